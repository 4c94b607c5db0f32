using System.Buffers;
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
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// <summary>Sec-WebSocket-Accept: base64(SHA-1(key + the RFC's GUID)).</summary>
    public static string AcceptKey(string key) => Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));

    public static void WriteSwitchingProtocols(IBufferWriter<byte> output, string key, string? subProtocol)
    {
        var head = new StringBuilder("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n")
            .Append("Sec-WebSocket-Accept: ").Append(AcceptKey(key)).Append("\r\n");
        if (subProtocol is not null) head.Append("Sec-WebSocket-Protocol: ").Append(subProtocol).Append("\r\n");
        Encoding.ASCII.GetBytes(head.Append("\r\n").ToString(), output);
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
