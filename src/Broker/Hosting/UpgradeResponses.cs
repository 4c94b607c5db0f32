using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;

namespace WsBroker.Broker.Hosting;

/// <summary>The HTTP/1.1 answers <see cref="PipelineWebSocketEndpoint"/> writes itself: 101 Switching Protocols (RFC 6455
/// §4.2.2), or a refusal as the same problem details (RFC 9457) ASP.NET Core's <c>Results.Problem</c> writes, after which the
/// connection closes.</summary>
internal static class UpgradeResponses
{
    private static ReadOnlySpan<byte> AcceptGuidBytes => "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"u8;

    // Sec-WebSocket-Accept, base64(SHA-1(key + the RFC's GUID)): its 28 bytes into `accept`; returns how many were written.
    private static int WriteAcceptKey(string key, Span<byte> accept)
    {
        var length = key.Length + AcceptGuidBytes.Length;
        var rented = length > 256 ? ArrayPool<byte>.Shared.Rent(length) : null;
        try
        {
            Span<byte> input = rented is null ? stackalloc byte[256] : rented;
            var written = Encoding.ASCII.GetBytes(key, input);
            AcceptGuidBytes.CopyTo(input[written..]);
            Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
            SHA1.HashData(input[..(written + AcceptGuidBytes.Length)], hash);
            Base64.EncodeToUtf8(hash, accept, out _, out var encoded);
            return encoded;
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public static void WriteSwitchingProtocols(IBufferWriter<byte> output, string key, string? subProtocol)
    {
        output.Write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: "u8);
        Span<byte> accept = stackalloc byte[28];
        output.Write(accept[..WriteAcceptKey(key, accept)]);
        if (subProtocol is not null)
        {
            output.Write("\r\nSec-WebSocket-Protocol: "u8);
            Encoding.ASCII.GetBytes(subProtocol, output);
        }
        output.Write("\r\n\r\n"u8);
    }

    public static void WriteRefusal(IBufferWriter<byte> output, UpgradeRefusal refusal)
    {
        var body = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteString("type", TypeOf(refusal.Status));
            json.WriteString("title", refusal.Title);
            json.WriteNumber("status", refusal.Status);
            json.WriteString("detail", refusal.Detail);
            json.WriteEndObject();
        }
        var head = string.Create(CultureInfo.InvariantCulture,
            $"HTTP/1.1 {refusal.Status} {ReasonPhrases.GetReasonPhrase(refusal.Status)}\r\nContent-Type: application/problem+json\r\nContent-Length: {body.WrittenCount}\r\n{(refusal.RetryAfter is { } retry ? $"Retry-After: {retry}\r\n" : "")}Connection: close\r\n\r\n");
        Encoding.ASCII.GetBytes(head, output);
        output.Write(body.WrittenSpan);
    }

    // The "type" ASP.NET Core gives each status (its ProblemDetailsDefaults).
    private static string TypeOf(int status) => status switch
    {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        401 => "https://tools.ietf.org/html/rfc9110#section-15.5.2",
        403 => "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        503 => "https://tools.ietf.org/html/rfc9110#section-15.6.4",
        _ => "about:blank",
    };
}
