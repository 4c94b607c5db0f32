using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

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
    // What a Host value may hold (RFC 3986 §3.2.2-3.2.3: a reg-name, IPv4 or [IP-literal], and :port), as Kestrel checks it.
    private static readonly SearchValues<byte> s_hostBytes = SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%"u8);
    private static ReadOnlySpan<byte> RawPrefix => "/ws/topic/"u8;
    private static readonly Dictionary<string, StringValues> s_noQuery = [];

    // The query after '?' (null when none) is parsed when first asked: most clients send none.
    private readonly string? _queryString;
    private Dictionary<string, StringValues>? _query;

    private UpgradeRequest(string key, string? rawPath, IReadOnlyList<string> protocols, string? queryString, string? authorization)
    {
        Key = key;
        RawPath = rawPath;
        Protocols = protocols;
        _queryString = queryString;
        Authorization = authorization;
    }

    /// <summary>Sec-WebSocket-Key.</summary>
    public string Key { get; }

    /// <summary>Null for <c>/ws</c> (STOMP); else the path after <c>/ws/topic/</c> (a raw topic URL).</summary>
    public string? RawPath { get; }

    /// <summary>The subprotocols offered, in order.</summary>
    public IReadOnlyList<string> Protocols { get; }

    public string? Authorization { get; }

    /// <summary>The first value of a query parameter, decoded as ASP.NET Core decodes it.</summary>
    public string? Query(string name)
    {
        _query ??= _queryString is null ? s_noQuery : QueryHelpers.ParseQuery(_queryString);
        return _query.TryGetValue(name, out var values) ? values.FirstOrDefault() : null;
    }

    /// <summary>Reads the head from the start of <paramref name="buffer"/>; <paramref name="end"/> is where it ends when ours.
    /// <paramref name="maxBytes"/> bounds the head, <paramref name="maxHeaders"/> its header lines (Kestrel's limits).
    /// <paramref name="searched"/>: how many of the buffer's first bytes an earlier call searched without finding the head's
    /// end (the same buffer, grown): they are not searched again, so a head that arrives a byte at a time costs its length,
    /// not its length squared.</summary>
    public static UpgradePeek Peek(ReadOnlySequence<byte> buffer, int maxBytes, int maxHeaders, out UpgradeRequest? request, out SequencePosition end,
        long searched = 0)
    {
        request = null;
        end = buffer.Start;
        // The first bytes decide most connections at once: anything but "GET /ws" goes on untouched.
        Span<byte> prefix = stackalloc byte[s_prefix.Length];
        var seen = (int)Math.Min(buffer.Length, prefix.Length);
        buffer.Slice(0, seen).CopyTo(prefix);
        if (!prefix[..seen].SequenceEqual(s_prefix.AsSpan(0, seen))) return UpgradePeek.NotOurs;
        searched = Math.Clamp(searched, 0, buffer.Length);
        var reader = new SequenceReader<byte>(buffer);
        reader.Advance(Math.Max(0, searched - 3));                // the end's first bytes may be among those searched
        var ended = reader.TryReadTo(out ReadOnlySequence<byte> _, "\r\n\r\n"u8, advancePastDelimiter: false);
        // A line that ends in LF alone, up to the end found (the client's first frame may follow it in the same read):
        // Kestrel takes it as a line end, this reader would wait for a CRLF CRLF that never comes.
        if (HasBareLineFeed(ended ? buffer.Slice(0, reader.Consumed + 4) : buffer, searched)) return UpgradePeek.NotOurs;
        if (!ended) return buffer.Length > maxBytes ? UpgradePeek.NotOurs : UpgradePeek.NeedMoreData;
        var head = buffer.Slice(0, reader.Position);
        if (head.Length > maxBytes) return UpgradePeek.NotOurs;
        reader.Advance(4);
        end = reader.Position;
        request = Parse(head, maxHeaders);
        return request is null ? UpgradePeek.NotOurs : UpgradePeek.Ours;
    }

    // True when a LF not preceded by CR lies at or after `from` (the bytes before it were looked at already).
    private static bool HasBareLineFeed(ReadOnlySequence<byte> buffer, long from)
    {
        var reader = new SequenceReader<byte>(buffer);
        var previous = (byte)0;
        if (from > 0)
        {
            reader.Advance(from - 1);
            reader.TryRead(out previous);
        }
        foreach (var segment in buffer.Slice(reader.Position))
        {
            var span = segment.Span;
            while (!span.IsEmpty)
            {
                var at = span.IndexOf((byte)'\n');
                if (at < 0)
                {
                    previous = span[^1];
                    break;
                }
                if ((at > 0 ? span[at - 1] : previous) != '\r') return true;
                previous = (byte)'\n';
                span = span[(at + 1)..];
            }
        }
        return false;
    }

    private static UpgradeRequest? Parse(ReadOnlySequence<byte> head, int maxHeaders)
    {
        if (head.IsSingleSegment) return Parse(head.FirstSpan, maxHeaders);
        var rented = ArrayPool<byte>.Shared.Rent((int)head.Length);
        try
        {
            head.CopyTo(rented);
            return Parse(rented.AsSpan(0, (int)head.Length), maxHeaders);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    // On the bytes: only the values the broker uses become strings (the key, the subprotocols, the target's path and query,
    // the authorization), and each header line is looked at once.
    private static UpgradeRequest? Parse(ReadOnlySpan<byte> head, int maxHeaders)
    {
        // Printable ASCII, tab and CRLF only (Kestrel refuses other bytes in a head unless told otherwise).
        if (head.IndexOfAnyExcept(s_headBytes) >= 0) return null;
        var rest = head;
        if (!TakeLine(ref rest, out var requestLine)) return null;
        // request-line = method SP request-target SP HTTP-version, with single spaces.
        var space = requestLine.IndexOf((byte)' ');
        if (space < 0 || !requestLine[..space].SequenceEqual("GET"u8)) return null;
        var afterMethod = requestLine[(space + 1)..];
        space = afterMethod.IndexOf((byte)' ');
        if (space < 0 || !afterMethod[(space + 1)..].SequenceEqual("HTTP/1.1"u8)) return null;
        var target = afterMethod[..space];
        var question = target.IndexOf((byte)'?');
        var path = question < 0 ? target : target[..question];
        string? rawPath = null;
        if (path.StartsWith(RawPrefix)) rawPath = Encoding.ASCII.GetString(path[RawPrefix.Length..]);
        else if (!path.SequenceEqual("/ws"u8)) return null;
        // Left to Kestrel's decoding and normalisation (and to ASP.NET Core's routing): %-escapes, dot segments, fragments.
        if (path.Contains((byte)'%') || path.IndexOf("/."u8) >= 0 || target.Contains((byte)'#')) return null;

        var fields = new Fields();
        // The head ends before its blank line, so it never ends with CRLF: every line taken here is a field line.
        for (var count = 1; !rest.IsEmpty; count++)
        {
            if (!TakeLine(ref rest, out var line) || count > maxHeaders || !fields.Read(line)) return null;
        }
        if (!fields.IsWebSocketUpgrade(out var key)) return null;
        return new UpgradeRequest(key, rawPath, fields.Protocols ?? [], question < 0 ? null : Encoding.ASCII.GetString(target[question..]), fields.Authorization);
    }

    // The next line of `rest` (up to CRLF, or to the end); false when it holds a bare CR or LF.
    private static bool TakeLine(ref ReadOnlySpan<byte> rest, out ReadOnlySpan<byte> line)
    {
        var eol = rest.IndexOf("\r\n"u8);
        line = eol < 0 ? rest : rest[..eol];
        rest = eol < 0 ? [] : rest[(eol + 2)..];
        return line.IndexOfAny((byte)'\r', (byte)'\n') < 0;
    }

    // What the header lines say, as far as an upgrade goes (as ASP.NET Core's IsWebSocketRequest, plus what Kestrel itself
    // would refuse or treat as a body).
    private ref struct Fields
    {
        private int _hosts;
        private bool _hostInvalid;
        private int _versions;
        private int _keys;
        private bool _body;
        private bool _connectionUpgrade;
        private bool _upgradeWebSocket;
        private bool _version13;
        private string? _key;
        public List<string>? Protocols { get; private set; }
        public string? Authorization { get; private set; }

        // One field line: name ":" OWS value OWS. False when malformed: no name, whitespace before the colon, or an
        // obsolete folded line (RFC 9112 §5.1-5.2).
        public bool Read(scoped ReadOnlySpan<byte> line)
        {
            var colon = line.IndexOf((byte)':');
            if (colon <= 0) return false;
            var name = line[..colon];
            if (name.IndexOfAny((byte)' ', (byte)'\t') >= 0) return false;
            var value = line[(colon + 1)..].Trim(" \t"u8);
            if (Ascii.EqualsIgnoreCase(name, "host"u8))
            {
                _hosts++;
                _hostInvalid = value.IndexOfAnyExcept(s_hostBytes) >= 0;   // Kestrel answers such a Host 400
            }
            else if (Ascii.EqualsIgnoreCase(name, "content-length"u8) || Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8)) _body = true;
            else if (Ascii.EqualsIgnoreCase(name, "connection"u8)) _connectionUpgrade |= ListHas(value, "upgrade"u8);
            else if (Ascii.EqualsIgnoreCase(name, "upgrade"u8)) _upgradeWebSocket |= ListHas(value, "websocket"u8);
            else if (Ascii.EqualsIgnoreCase(name, "sec-websocket-version"u8))
            {
                _versions++;
                _version13 = value.SequenceEqual("13"u8);
            }
            else if (Ascii.EqualsIgnoreCase(name, "sec-websocket-key"u8))
            {
                _keys++;
                _key = Encoding.ASCII.GetString(value);
            }
            else if (Ascii.EqualsIgnoreCase(name, "sec-websocket-protocol"u8)) AddProtocols(value);
            else if (Ascii.EqualsIgnoreCase(name, "authorization"u8)) Authorization ??= Encoding.ASCII.GetString(value);
            return true;
        }

        public readonly bool IsWebSocketUpgrade(out string key)
        {
            key = "";
            if (_hosts != 1 || _hostInvalid || _body || !_connectionUpgrade || !_upgradeWebSocket || _versions != 1 || !_version13 || _keys != 1) return false;
            key = _key!;
            Span<byte> nonce = stackalloc byte[16];
            return Convert.TryFromBase64String(key, nonce, out var length) && length == 16;
        }

        // A comma-separated list that names `token` (case-insensitive, entries trimmed).
        private static bool ListHas(ReadOnlySpan<byte> value, ReadOnlySpan<byte> token)
        {
            foreach (var range in value.Split((byte)','))
            {
                if (Ascii.EqualsIgnoreCase(value[range].Trim(" \t"u8), token)) return true;
            }
            return false;
        }

        private void AddProtocols(scoped ReadOnlySpan<byte> value)
        {
            foreach (var range in value.Split((byte)','))
            {
                var entry = value[range].Trim(" \t"u8);
                if (entry.IsEmpty) continue;
                (Protocols ??= []).Add(KnownProtocol(entry) ?? Encoding.ASCII.GetString(entry));
            }
        }

        // The STOMP subprotocols as literals: no string per connection for them.
        private static string? KnownProtocol(ReadOnlySpan<byte> entry) =>
            entry.SequenceEqual("v12.stomp"u8) ? "v12.stomp" : entry.SequenceEqual("v11.stomp"u8) ? "v11.stomp"
            : entry.SequenceEqual("v10.stomp"u8) ? "v10.stomp" : null;
    }
}
