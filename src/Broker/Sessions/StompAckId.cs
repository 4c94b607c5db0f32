using System.Buffers;
using System.Buffers.Text;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// The <c>ack</c> header a STOMP 1.2 session gives a MESSAGE under client acknowledgement, and reads back from ACK and NACK:
/// <c>&lt;message-id&gt;-&lt;subscription number&gt;</c>, unique per session even when two subscriptions match one message.
/// </summary>
internal static class StompAckId
{
    /// <summary>Writes the header line <c>ack:&lt;message-id&gt;-&lt;subscription number&gt;</c>.</summary>
    public static void WriteHeader(IBufferWriter<byte> output, long messageId, int subscriptionNumber)
    {
        var span = output.GetSpan(48);
        "ack:"u8.CopyTo(span);
        Utf8Formatter.TryFormat(messageId, span[4..], out var n);
        span[4 + n] = (byte)'-';
        Utf8Formatter.TryFormat(subscriptionNumber, span[(5 + n)..], out var m);
        span[5 + n + m] = (byte)'\n';
        output.Advance(6 + n + m);
    }

    /// <summary>Reads an id written by <see cref="WriteHeader"/>; false when <paramref name="ackId"/> is not one.</summary>
    public static bool TryParse(ReadOnlySpan<byte> ackId, out long messageId, out int subscriptionNumber)
    {
        messageId = 0;
        subscriptionNumber = 0;
        var dash = ackId.LastIndexOf((byte)'-');
        return dash > 0 && Utf8Parser.TryParse(ackId[..dash], out messageId, out var used) && used == dash && messageId >= 0
            && Utf8Parser.TryParse(ackId[(dash + 1)..], out subscriptionNumber, out used) && used == ackId.Length - dash - 1;
    }
}
