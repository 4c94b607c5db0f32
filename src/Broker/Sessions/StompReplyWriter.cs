using System.Buffers;
using System.Globalization;
using System.Text;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// The frames a STOMP session answers with, for the version it negotiated: CONNECTED, RECEIPT, ERROR, the
/// <c>/user/queue/errors</c> MESSAGE of a business rejection, and the notice that a <c>since</c> replay was truncated.
/// Frames written into the caller's buffer allocate nothing (receipts and user errors go through the session's pooled
/// buffers); the rare ones come back as arrays.
/// </summary>
internal static class StompReplyWriter
{
    /// <summary>Where a session's business rejections go (<see cref="WriteUserError"/>).</summary>
    public const string UserErrorsDestination = "/user/queue/errors";

    /// <summary>CONNECTED for a client that authenticated as <paramref name="userId"/>.</summary>
    public static byte[] Connected(StompVersion version, StompHeartBeat heartBeat, string sessionId, string server, string userId, string? receipt)
    {
        var output = new ArrayBufferWriter<byte>(256);
        StompFrameWriter.WriteCommand(output, StompCommand.Connected);
        StompFrameWriter.WriteHeader(output, "version", version.ToHeaderValue(), StompEscaping.None);
        if (version != StompVersion.V1_0)
            StompFrameWriter.WriteHeader(output, "heart-beat", heartBeat.ToString(), StompEscaping.None);
        StompFrameWriter.WriteHeader(output, "session", sessionId, StompEscaping.None);
        StompFrameWriter.WriteHeader(output, "server", server, StompEscaping.None);
        StompFrameWriter.WriteHeader(output, "user-name", Sanitize(userId), StompEscaping.None);
        if (receipt is not null) StompFrameWriter.WriteHeader(output, "receipt-id", Sanitize(receipt), StompEscaping.None);
        StompFrameWriter.WriteBodyAndEnd(output, ReadOnlySpan<byte>.Empty, writeContentLength: false);
        return output.WrittenSpan.ToArray();
    }

    // CONNECTED headers are never escaped: keep CR, LF and ':' out of them.
    private static string Sanitize(string value) => value.AsSpan().IndexOfAny("\r\n:") < 0 ? value : value.Replace("\r", "").Replace("\n", "").Replace(":", "");

    /// <summary>RECEIPT for a receipt answered later (a stored message's, with its id in <c>message-id</c>); one the wire
    /// asked for is answered from the raw header value by <see cref="StompFrameWriter.WriteReceipt"/>.</summary>
    public static void WriteReceipt(IBufferWriter<byte> output, string receiptId, long? messageId, StompVersion version)
    {
        var escape = StompFrameWriter.EscapeMode(StompCommand.Receipt, version);
        StompFrameWriter.WriteCommand(output, StompCommand.Receipt);
        StompFrameWriter.WriteHeader(output, "receipt-id", receiptId, escape);
        if (messageId is { } id) StompFrameWriter.WriteHeader(output, "message-id"u8, id);
        StompFrameWriter.WriteBodyAndEnd(output, ReadOnlySpan<byte>.Empty, writeContentLength: false);
    }

    /// <summary>A business rejection: a MESSAGE on <paramref name="subscription"/> (one of <see cref="UserErrorsDestination"/>)
    /// with the reason as header and body, without allocating.</summary>
    public static void WriteUserError(IBufferWriter<byte> output, Subscription subscription, string message, string? receiptId, long id,
        StompVersion version)
    {
        var escape = StompFrameWriter.EscapeMode(StompCommand.Message, version);
        StompFrameWriter.WriteCommand(output, StompCommand.Message);
        StompFrameWriter.WriteRaw(output, subscription.HeaderLine);
        StompFrameWriter.WriteHeader(output, "destination", UserErrorsDestination, escape);
        StompFrameWriter.WriteHeader(output, "message-id"u8, id);
        StompFrameWriter.WriteHeader(output, "message", message, escape);
        StompFrameWriter.WriteHeader(output, "content-type", "text/plain", escape);
        if (receiptId is not null) StompFrameWriter.WriteHeader(output, "receipt-id", receiptId, escape);
        StompFrameWriter.WriteTextBodyAndEnd(output, message);
    }

    /// <summary>ERROR with a short client-safe <paramref name="message"/>, the body <paramref name="detail"/> (or the
    /// message), and the supported versions when <paramref name="listVersions"/> (the client has not connected yet).</summary>
    public static byte[] Error(string message, string? receiptId, string? detail, StompVersion version, bool listVersions)
    {
        var output = new ArrayBufferWriter<byte>(128);
        var escape = StompFrameWriter.EscapeMode(StompCommand.Error, version);
        StompFrameWriter.WriteCommand(output, StompCommand.Error);
        StompFrameWriter.WriteHeader(output, "message", message, escape);
        if (receiptId is not null) StompFrameWriter.WriteHeader(output, "receipt-id", receiptId, escape);
        if (listVersions) StompFrameWriter.WriteHeader(output, "version", StompVersions.Supported, escape);
        StompFrameWriter.WriteHeader(output, "content-type", "text/plain", escape);
        StompFrameWriter.WriteBodyAndEnd(output, Encoding.UTF8.GetBytes(detail ?? message));
        return output.WrittenSpan.ToArray();
    }

    /// <summary>The replay of <paramref name="subscription"/> stopped at the source's maximum: the client pages REST history
    /// from <paramref name="next"/> on (it is not a message: message-id names the notice, and it needs no ACK).</summary>
    public static byte[] ReplayTruncated(Subscription subscription, long next, StompVersion version)
    {
        var output = new ArrayBufferWriter<byte>(256);
        var escape = StompFrameWriter.EscapeMode(StompCommand.Message, version);
        StompFrameWriter.WriteCommand(output, StompCommand.Message);
        StompFrameWriter.WriteRaw(output, subscription.HeaderLine);
        StompFrameWriter.WriteHeader(output, "destination", subscription.Destination.Text, escape);
        StompFrameWriter.WriteHeader(output, "message-id", "replay-truncated-" + next.ToString(CultureInfo.InvariantCulture), escape);
        StompFrameWriter.WriteHeader(output, "replay", "truncated", escape);
        StompFrameWriter.WriteHeader(output, "replay-next"u8, next);
        StompFrameWriter.WriteBodyAndEnd(output, ReadOnlySpan<byte>.Empty);
        return output.WrittenSpan.ToArray();
    }
}
