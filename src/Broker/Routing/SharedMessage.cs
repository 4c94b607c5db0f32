using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using WsBroker.Protocol;

namespace WsBroker.Broker.Routing;

/// <summary>
/// A MESSAGE serialised once for every subscriber (DESIGN.md §6): everything after the per-subscriber
/// <c>subscription</c> (and <c>ack</c>) header — destination, message-id, custom headers, content-length, body, NUL — in
/// one array. Variants for STOMP 1.1/1.0 escaping and the JSON of raw topic URLs are made lazily, once.
/// </summary>
public sealed class SharedMessage
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_scratch;
    private readonly byte[] _tail;                    // STOMP 1.2 escaping
    private readonly int _headerBytes;                // header lines at the start of _tail, before content-length
    private byte[]? _tail11;
    private byte[]? _tail10;
    private byte[]? _json;

    private SharedMessage(long id, string destination, byte[] tail, int headerBytes, int bodyOffset, int bodyLength, bool bodyIsUtf8,
        string? sender, string? receiver, long timestamp)
    {
        Id = id;
        Destination = destination;
        _tail = tail;
        _headerBytes = headerBytes;
        BodyOffset = bodyOffset;
        BodyLength = bodyLength;
        BodyIsUtf8 = bodyIsUtf8;
        Sender = sender;
        Receiver = receiver;
        Timestamp = timestamp;
    }

    public long Id { get; }
    public string Destination { get; }
    public string? Sender { get; }
    public string? Receiver { get; }
    /// <summary>Unix milliseconds when the broker accepted the message.</summary>
    public long Timestamp { get; }
    public bool BodyIsUtf8 { get; }
    private int BodyOffset { get; }
    private int BodyLength { get; }
    public ReadOnlySpan<byte> Body => _tail.AsSpan(BodyOffset, BodyLength);

    /// <summary>Approximate bytes this message costs in an outbox.</summary>
    public int Size => _tail.Length + 64;

    /// <summary>Builds a message. <paramref name="headers"/> are extra headers (name, value) in UTF-8 as given (unescaped);
    /// names the broker owns (destination, message-id, subscription, ack, content-length, receipt, transaction) are skipped.</summary>
    public static SharedMessage Create(long id, string destination, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlySequence<byte> body,
        string? sender = null, string? receiver = null, long? timestamp = null)
    {
        var w = Scratch();
        StompFrameWriter.WriteHeader(w, "destination", destination);
        StompFrameWriter.WriteHeader(w, "message-id"u8, id);
        foreach (var (name, value) in headers)
        {
            if (IsReserved(name)) continue;
            StompFrameWriter.WriteHeader(w, name, value);
        }
        return Finish(w, id, destination, body, sender, receiver, timestamp);
    }

    /// <summary>Builds a message from a parsed SEND without intermediate strings for its headers.</summary>
    public static SharedMessage FromSend(long id, string destination, in StompFrameView send, string? sender, long? timestamp = null)
    {
        var w = Scratch();
        StompFrameWriter.WriteHeader(w, "destination", destination);
        StompFrameWriter.WriteHeader(w, "message-id"u8, id);
        for (var i = 0; i < send.HeaderCount; i++)
        {
            var name = send.GetHeaderName(i);
            if (IsReserved(name) || IsRepeated(send, i, name)) continue;
            StompFrameWriter.WriteHeader(w, name, send.GetHeaderValue(i));
        }
        return Finish(w, id, destination, send.Body, sender, null, timestamp);
    }

    private static SharedMessage Finish(ArrayBufferWriter<byte> w, long id, string destination, ReadOnlySequence<byte> body,
        string? sender, string? receiver, long? timestamp)
    {
        var headerBytes = w.WrittenCount;
        StompFrameWriter.WriteHeader(w, "content-length"u8, body.Length);
        var bodyOffset = w.WrittenCount + 1;
        StompFrameWriter.WriteBodyAndEnd(w, body, writeContentLength: false);
        var tail = w.WrittenSpan.ToArray();
        var bodySpan = tail.AsSpan(bodyOffset, (int)body.Length);
        return new SharedMessage(id, destination, tail, headerBytes, bodyOffset, bodySpan.Length, Utf8.IsValid(bodySpan),
            sender, receiver, timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    /// <summary>The shared tail for a session of <paramref name="version"/>.</summary>
    public ReadOnlySpan<byte> Tail(StompVersion version) => version switch
    {
        StompVersion.V1_2 => _tail,
        StompVersion.V1_1 => _tail11 ??= Transcode(StompEscaping.V1_1),
        _ => _tail10 ??= Transcode(StompEscaping.None),
    };

    /// <summary>The delivery as one JSON text message for raw topic URLs:
    /// <c>{"id","destination","sender","receiver","timestamp","body"}</c>.</summary>
    public ReadOnlySpan<byte> Json => _json ??= BuildJson();

    private byte[] BuildJson()
    {
        var buffer = new ArrayBufferWriter<byte>(BodyLength + 160);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            json.WriteString("destination", Destination);
            if (Sender is null) json.WriteNull("sender"); else json.WriteString("sender", Sender);
            if (Receiver is null) json.WriteNull("receiver"); else json.WriteString("receiver", Receiver);
            json.WriteNumber("timestamp", Timestamp);
            // A binary body is not text: it travels base64-encoded with a marker so a client can tell.
            if (BodyIsUtf8) json.WriteString("body", Body);
            else
            {
                json.WriteBase64String("body", Body);
                json.WriteBoolean("base64", true);
            }
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    // Re-escapes the header lines for an older version (they were written with STOMP 1.2 escaping).
    private byte[] Transcode(StompEscaping escaping)
    {
        var w = new ArrayBufferWriter<byte>(_tail.Length + 16);
        var headers = _tail.AsSpan(0, _headerBytes);
        while (!headers.IsEmpty)
        {
            var lf = headers.IndexOf((byte)'\n');
            var line = headers[..lf];
            headers = headers[(lf + 1)..];
            var colon = line.IndexOf((byte)':');
            var name = Unescape(line[..colon]);
            // Without escaping (STOMP 1.0) a ':' in a name would split it: "content-length\c99" would arrive as a second
            // content-length header. Such a header cannot be represented, so a 1.0 subscriber does not get it.
            if (escaping == StompEscaping.None && name.AsSpan().IndexOf((byte)':') >= 0) continue;
            StompFrameWriter.WriteHeader(w, name, Unescape(line[(colon + 1)..]), escaping);
        }
        StompFrameWriter.WriteRaw(w, _tail.AsSpan(_headerBytes));
        return w.WrittenSpan.ToArray();
    }

    private static byte[] Unescape(ReadOnlySpan<byte> escaped)
    {
        var result = new byte[escaped.Length];
        var n = 0;
        for (var i = 0; i < escaped.Length; i++)
        {
            if (escaped[i] != (byte)'\\' || i + 1 == escaped.Length) { result[n++] = escaped[i]; continue; }
            result[n++] = escaped[++i] switch { (byte)'n' => (byte)'\n', (byte)'r' => (byte)'\r', (byte)'c' => (byte)':', var b => b };
        }
        return result.AsSpan(0, n).ToArray();
    }

    private static ArrayBufferWriter<byte> Scratch()
    {
        var w = t_scratch ??= new ArrayBufferWriter<byte>(1024);
        w.ResetWrittenCount();
        return w;
    }

    private static bool IsReserved(string name) => name is "destination" or "message-id" or "subscription" or "ack" or "content-length"
        or "receipt" or "transaction";

    private static bool IsReserved(ReadOnlySpan<byte> name) => name.SequenceEqual("destination"u8) || name.SequenceEqual("message-id"u8)
        || name.SequenceEqual("subscription"u8) || name.SequenceEqual("ack"u8) || name.SequenceEqual("content-length"u8)
        || name.SequenceEqual("receipt"u8) || name.SequenceEqual("transaction"u8);

    // STOMP 1.2: only the first entry of a repeated header counts, so only the first is forwarded.
    private static bool IsRepeated(in StompFrameView frame, int index, ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < index; i++)
        {
            if (frame.GetHeaderName(i).SequenceEqual(name)) return true;
        }
        return false;
    }

    public override string ToString() => $"MESSAGE {Id} to {Destination} ({BodyLength} bytes)";

    internal static string Utf8String(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);
}
