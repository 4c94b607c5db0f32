using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using WsBroker.Protocol;

namespace WsBroker.Broker.Routing;

/// <summary>
/// A MESSAGE serialised once for every subscriber (docs/design.md §6): the head (everything after the per-subscriber
/// <c>subscription</c> and <c>ack</c> headers: destination, message-id, custom headers, content-length and the blank
/// line) in one array, and the body, which is shared, never copied again (the store keeps the same memory). Variants of the
/// head for STOMP 1.1/1.0 escaping and the JSON of raw topic URLs are made lazily, once.
/// </summary>
public sealed class SharedMessage
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_scratch;
    private readonly byte[] _head;                    // STOMP 1.2 escaping
    private readonly int _headerBytes;                // header lines at the start of _head, before content-length
    private readonly ReadOnlyMemory<byte> _body;
    private byte[]? _head11;
    private byte[]? _head10;
    private byte[]? _json;

    private SharedMessage(long id, string destination, byte[] head, int headerBytes, ReadOnlyMemory<byte> body, bool bodyIsUtf8,
        string? sender, string? receiver, long timestamp)
    {
        Id = id;
        Destination = destination;
        _head = head;
        _headerBytes = headerBytes;
        _body = body;
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
    public ReadOnlySpan<byte> Body => _body.Span;

    /// <summary>The body as memory shared with this message (the store keeps it instead of another copy).</summary>
    public ReadOnlyMemory<byte> BodyMemory => _body;

    /// <summary>Approximate bytes this message costs in an outbox.</summary>
    public int Size => _head.Length + _body.Length + 64;

    /// <summary>Builds a message. <paramref name="headers"/> are extra headers (name, value) in UTF-8 as given (unescaped);
    /// names the broker owns (destination, message-id, subscription, ack, content-length, receipt, transaction) are skipped.
    /// <paramref name="body"/> is kept, not copied: the caller hands over memory it no longer changes.</summary>
    public static SharedMessage Create(long id, string destination, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body,
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

    /// <summary>Builds a message from a parsed SEND without intermediate strings for its headers; the body is copied once
    /// out of the read buffer.</summary>
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
        return Finish(w, id, destination, send.Body.ToArray(), sender, null, timestamp);
    }

    private static SharedMessage Finish(ArrayBufferWriter<byte> w, long id, string destination, ReadOnlyMemory<byte> body,
        string? sender, string? receiver, long? timestamp)
    {
        var headerBytes = w.WrittenCount;
        StompFrameWriter.WriteHeader(w, "content-length"u8, body.Length);
        w.GetSpan(1)[0] = (byte)'\n';
        w.Advance(1);
        return new SharedMessage(id, destination, w.WrittenSpan.ToArray(), headerBytes, body, Utf8.IsValid(body.Span),
            sender, receiver, timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    /// <summary>Writes everything after the per-subscriber headers, for a session of <paramref name="version"/>: the head,
    /// the body and the NUL that ends the frame.</summary>
    public void WriteTail(IBufferWriter<byte> output, StompVersion version)
    {
        StompFrameWriter.WriteRaw(output, Head(version));
        var span = output.GetSpan(_body.Length + 1);
        _body.Span.CopyTo(span);
        span[_body.Length] = 0;
        output.Advance(_body.Length + 1);
    }

    private ReadOnlySpan<byte> Head(StompVersion version) => version switch
    {
        StompVersion.V1_2 => _head,
        StompVersion.V1_1 => _head11 ??= Transcode(StompEscaping.V1_1),
        _ => _head10 ??= Transcode(StompEscaping.None),
    };

    /// <summary>The delivery as one JSON text message for raw topic URLs:
    /// <c>{"id","destination","sender","receiver","timestamp","body"}</c>.</summary>
    public ReadOnlySpan<byte> Json => _json ??= BuildJson();

    private byte[] BuildJson()
    {
        var buffer = new ArrayBufferWriter<byte>(_body.Length + 160);
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
        var w = new ArrayBufferWriter<byte>(_head.Length + 16);
        var headers = _head.AsSpan(0, _headerBytes);
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
        StompFrameWriter.WriteRaw(w, _head.AsSpan(_headerBytes));
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

    public override string ToString() => $"MESSAGE {Id} to {Destination} ({_body.Length} bytes)";

    // ---- between nodes ---------------------------------------------------------------------------------------------

    private const byte WireVersion = 1;

    /// <summary>Writes this message as bytes another node rebuilds it from with <see cref="TryReadWire"/>: a version byte,
    /// id, timestamp, flags, destination, sender and receiver (length-prefixed UTF-8, -1 for none), the head with the
    /// length of its header lines, then the body. Little-endian.</summary>
    public void WriteWire(IBufferWriter<byte> output)
    {
        var span = output.GetSpan(18);
        span[0] = WireVersion;
        BinaryPrimitives.WriteInt64LittleEndian(span[1..], Id);
        BinaryPrimitives.WriteInt64LittleEndian(span[9..], Timestamp);
        span[17] = BodyIsUtf8 ? (byte)1 : (byte)0;
        output.Advance(18);
        WriteString(output, Destination);
        WriteString(output, Sender);
        WriteString(output, Receiver);
        WriteInt(output, _headerBytes);
        WriteBytes(output, _head);
        WriteBytes(output, _body.Span);
    }

    /// <summary>Rebuilds a message written by <see cref="WriteWire"/>; false (and null) for bytes that are not one.</summary>
    public static bool TryReadWire(ReadOnlySpan<byte> wire, [NotNullWhen(true)] out SharedMessage? message)
    {
        message = null;
        if (wire.Length < 18 || wire[0] != WireVersion) return false;
        var id = BinaryPrimitives.ReadInt64LittleEndian(wire[1..]);
        var timestamp = BinaryPrimitives.ReadInt64LittleEndian(wire[9..]);
        var utf8 = wire[17] == 1;
        var rest = wire[18..];
        if (!TryReadString(ref rest, out var destination) || destination is null || !TryReadString(ref rest, out var sender)
            || !TryReadString(ref rest, out var receiver) || !TryReadInt(ref rest, out var headerBytes)
            || !TryReadBytes(ref rest, out var head) || !TryReadBytes(ref rest, out var body) || !rest.IsEmpty
            || headerBytes < 0 || headerBytes > head.Length || head.Length == 0 || head[^1] != (byte)'\n') return false;
        message = new SharedMessage(id, destination, head.ToArray(), headerBytes, body.ToArray(), utf8, sender, receiver, timestamp);
        return true;
    }

    private static void WriteInt(IBufferWriter<byte> output, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), value);
        output.Advance(4);
    }

    private static void WriteBytes(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes)
    {
        WriteInt(output, bytes.Length);
        StompFrameWriter.WriteRaw(output, bytes);
    }

    private static void WriteString(IBufferWriter<byte> output, string? value)
    {
        if (value is null)
        {
            WriteInt(output, -1);
            return;
        }
        var length = Encoding.UTF8.GetByteCount(value);
        WriteInt(output, length);
        Encoding.UTF8.GetBytes(value, output.GetSpan(length));
        output.Advance(length);
    }

    private static bool TryReadInt(ref ReadOnlySpan<byte> wire, out int value)
    {
        value = 0;
        if (wire.Length < 4) return false;
        value = BinaryPrimitives.ReadInt32LittleEndian(wire);
        wire = wire[4..];
        return true;
    }

    private static bool TryReadBytes(ref ReadOnlySpan<byte> wire, out ReadOnlySpan<byte> bytes)
    {
        bytes = default;
        if (!TryReadInt(ref wire, out var length) || length < 0 || length > wire.Length) return false;
        bytes = wire[..length];
        wire = wire[length..];
        return true;
    }

    private static bool TryReadString(ref ReadOnlySpan<byte> wire, out string? value)
    {
        value = null;
        if (!TryReadInt(ref wire, out var length)) return false;
        if (length == -1) return true;
        if (length < 0 || length > wire.Length) return false;
        value = Encoding.UTF8.GetString(wire[..length]);
        wire = wire[length..];
        return true;
    }
}
