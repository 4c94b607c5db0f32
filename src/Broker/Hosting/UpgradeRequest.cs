using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;

namespace WsBroker.Broker.Hosting;

/// <summary>What <see cref="UpgradeRequest.Peek"/> makes of the first bytes of a connection.</summary>
public enum UpgradePeek
{
    /// <summary>Could still be ours: read more.</summary>
    NeedMoreData,
    /// <summary>Not a WebSocket upgrade this endpoint takes as it stands: Kestrel's HTTP layer gets the connection untouched.</summary>
    NotOurs,
    /// <summary>A well-formed WebSocket upgrade to <c>/ws</c> or <c>/ws/topic/…</c>.</summary>
    Ours,
}

/// <summary>
/// The head of an HTTP/1.1 request, read off a connection before Kestrel's HTTP layer sees it (RFC 9112 §2-5, RFC 6455 §4.1):
/// <code>
/// GET /ws?access_token=… HTTP/1.1 CRLF        request-line: method SP origin-form SP HTTP-version
/// Host: broker.example CRLF                   field-line: name ":" OWS value OWS
/// Upgrade: websocket CRLF
/// Connection: Upgrade CRLF
/// Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ== CRLF
/// Sec-WebSocket-Version: 13 CRLF
/// Sec-WebSocket-Protocol: v12.stomp, v11.stomp CRLF
/// CRLF
/// </code>
/// Only a plain, valid upgrade is <see cref="UpgradePeek.Ours"/>. Anything else (another method or path, a percent-encoded
/// or dot-segment path, a body, a missing or bad WebSocket header, a version other than 13, bytes that are not printable
/// ASCII, a head over the limits) is <see cref="UpgradePeek.NotOurs"/>: Kestrel and ASP.NET Core then answer it as they
/// always have (400 "WebSocket upgrade required", 431, or the AspNetCore WebSocket path itself).
/// </summary>
public sealed class UpgradeRequest
{
    private static readonly byte[] s_prefix = "GET /ws"u8.ToArray();
    private static readonly SearchValues<byte> s_headBytes = SearchValues.Create([.. Enumerable.Range(' ', '~' - ' ' + 1).Select(b => (byte)b), (byte)'\t', (byte)'\r', (byte)'\n']);
    private const string RawPrefix = "/ws/topic/";

    private UpgradeRequest(string key, string? rawPath, IReadOnlyList<string> protocols, Dictionary<string, Microsoft.Extensions.Primitives.StringValues> query,
        string? authorization)
    {
        Key = key;
        RawPath = rawPath;
        Protocols = protocols;
        _query = query;
        Authorization = authorization;
    }

    private readonly Dictionary<string, Microsoft.Extensions.Primitives.StringValues> _query;

    /// <summary>Sec-WebSocket-Key.</summary>
    public string Key { get; }

    /// <summary>Null for <c>/ws</c> (STOMP); else the path after <c>/ws/topic/</c> (a raw topic URL).</summary>
    public string? RawPath { get; }

    /// <summary>The subprotocols offered, in order.</summary>
    public IReadOnlyList<string> Protocols { get; }

    public string? Authorization { get; }

    /// <summary>The first value of a query parameter, decoded as ASP.NET Core decodes it.</summary>
    public string? Query(string name) => _query.TryGetValue(name, out var values) ? values.FirstOrDefault() : null;

    /// <summary>Reads the head from the start of <paramref name="buffer"/>; <paramref name="end"/> is where it ends when ours.
    /// <paramref name="maxBytes"/> bounds the head, <paramref name="maxHeaders"/> its header lines (Kestrel's limits).</summary>
    public static UpgradePeek Peek(ReadOnlySequence<byte> buffer, int maxBytes, int maxHeaders, out UpgradeRequest? request, out SequencePosition end)
    {
        request = null;
        end = buffer.Start;
        // The first bytes decide most connections at once: anything but "GET /ws" goes on untouched.
        Span<byte> prefix = stackalloc byte[s_prefix.Length];
        var seen = (int)Math.Min(buffer.Length, prefix.Length);
        buffer.Slice(0, seen).CopyTo(prefix);
        if (!prefix[..seen].SequenceEqual(s_prefix.AsSpan(0, seen))) return UpgradePeek.NotOurs;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> head, "\r\n\r\n"u8, advancePastDelimiter: true))
            return buffer.Length > maxBytes ? UpgradePeek.NotOurs : UpgradePeek.NeedMoreData;
        if (head.Length > maxBytes) return UpgradePeek.NotOurs;
        end = reader.Position;
        request = Parse(head, maxHeaders);
        return request is null ? UpgradePeek.NotOurs : UpgradePeek.Ours;
    }

    private static UpgradeRequest? Parse(ReadOnlySequence<byte> head, int maxHeaders)
    {
        foreach (var segment in head)
        {
            // Printable ASCII, tab and CRLF only (Kestrel refuses other bytes in a head unless told otherwise).
            if (segment.Span.IndexOfAnyExcept(s_headBytes) >= 0) return null;
        }
        var lines = Encoding.ASCII.GetString(head).Split("\r\n");
        if (lines.Length - 1 > maxHeaders || lines.Any(l => l.Contains('\r') || l.Contains('\n'))) return null;
        var requestLine = lines[0].Split(' ');
        if (requestLine is not ["GET", var target, "HTTP/1.1"]) return null;
        var question = target.IndexOf('?', StringComparison.Ordinal);
        var path = question < 0 ? target : target[..question];
        string? rawPath = null;
        if (path.StartsWith(RawPrefix, StringComparison.Ordinal)) rawPath = path[RawPrefix.Length..];
        else if (path != "/ws") return null;
        // Left to Kestrel's decoding and normalisation (and to ASP.NET Core's routing): %-escapes, dot segments, fragments.
        if (path.Contains('%') || path.Contains("/.", StringComparison.Ordinal) || target.Contains('#')) return null;
        var headers = ReadHeaders(lines.AsSpan(1));
        if (headers is null) return null;
        if (!IsWebSocketUpgrade(headers, out var key)) return null;
        var protocols = headers.TryGetValue("sec-websocket-protocol", out var offered)
            ? offered.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList()
            : [];
        var query = QueryHelpers.ParseQuery(question < 0 ? "" : target[question..]);
        return new UpgradeRequest(key, rawPath, protocols, query, headers.TryGetValue("authorization", out var auth) ? auth[0] : null);
    }

    private static Dictionary<string, List<string>>? ReadHeaders(ReadOnlySpan<string> lines)
    {
        var headers = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines)
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            // No name, whitespace before the colon, or an obsolete folded line: malformed (RFC 9112 §5.1-5.2).
            if (colon <= 0 || line[..colon].Any(c => c is ' ' or '\t')) return null;
            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(' ', '\t');
            if (headers.TryGetValue(name, out var values)) values.Add(value);
            else headers[name] = [value];
        }
        return headers;
    }

    // As ASP.NET Core's IsWebSocketRequest, plus what Kestrel itself would refuse or treat as a body.
    private static bool IsWebSocketUpgrade(Dictionary<string, List<string>> headers, out string key)
    {
        key = "";
        if (!headers.TryGetValue("host", out var host) || host.Count != 1) return false;
        if (headers.ContainsKey("content-length") || headers.ContainsKey("transfer-encoding")) return false;
        if (!Has(headers, "connection", "upgrade") || !Has(headers, "upgrade", "websocket")) return false;
        if (!headers.TryGetValue("sec-websocket-version", out var version) || version is not ["13"]) return false;
        if (!headers.TryGetValue("sec-websocket-key", out var keys) || keys.Count != 1) return false;
        Span<byte> nonce = stackalloc byte[16];
        if (!Convert.TryFromBase64String(keys[0], nonce, out var length) || length != 16) return false;
        key = keys[0];
        return true;
    }

    // A comma-separated list header that names `token` (case-insensitive).
    private static bool Has(Dictionary<string, List<string>> headers, string name, string token) =>
        headers.TryGetValue(name, out var values)
        && values.Any(v => v.Split(',', StringSplitOptions.TrimEntries).Contains(token, StringComparer.OrdinalIgnoreCase));
}
