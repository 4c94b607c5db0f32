using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace WsBroker.Protocol;

/// <summary>
/// Writes spec-exact STOMP frames into an <see cref="IBufferWriter{T}"/> without allocating. Whole frames with
/// <see cref="Write(IBufferWriter{byte}, StompFrame, StompVersion)"/>, or piece by piece on the hot path:
/// <see cref="WriteCommand"/>, any number of <c>WriteHeader</c>, then <see cref="WriteBodyAndEnd(IBufferWriter{byte}, ReadOnlySpan{byte}, bool)"/>.
/// </summary>
public static class StompFrameWriter
{
    private const byte Lf = (byte)'\n';
    private const byte Colon = (byte)':';
    private const byte Backslash = (byte)'\\';
    private const byte Space = (byte)' ';
    private static readonly SearchValues<byte> s_needsEscape = SearchValues.Create("\\\n\r:"u8);
    private static readonly SearchValues<char> s_needsEscapeChars = SearchValues.Create("\\\n\r:");
    private static readonly SearchValues<byte> s_lineBreaks = SearchValues.Create("\r\n"u8);
    private static readonly byte[] s_supportedVersions = Encoding.ASCII.GetBytes(StompVersions.Supported);

    /// <summary>Writes a whole frame. Header escaping follows the command and version; SEND, MESSAGE and ERROR always get a
    /// <c>content-length</c> computed from the body (a <c>content-length</c> entry in the headers is ignored).</summary>
    public static void Write(IBufferWriter<byte> output, StompFrame frame, StompVersion version = StompVersion.V1_2)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(frame);
        if (!frame.Body.IsEmpty && !frame.Command.MayHaveBody())
            throw new ArgumentException($"a {frame.Command.ToWireString()} frame must not have a body", nameof(frame));
        var escape = EscapeMode(frame.Command, version);
        WriteCommand(output, frame.Command);
        foreach (var (name, value) in frame.Headers)
        {
            if (name == "content-length") continue;
            WriteHeader(output, name, value, escape);
        }
        WriteBodyAndEnd(output, frame.Body.Span, writeContentLength: frame.Command.MayHaveBody());
    }

    /// <summary>How header text must be escaped for this command and version.</summary>
    public static StompEscaping EscapeMode(StompCommand command, StompVersion version) =>
        !command.UsesHeaderEscaping() || version == StompVersion.V1_0 ? StompEscaping.None
        : version == StompVersion.V1_1 ? StompEscaping.V1_1 : StompEscaping.V1_2;

    /// <summary>Writes the command line.</summary>
    public static void WriteCommand(IBufferWriter<byte> output, StompCommand command)
    {
        var name = StompCommands.GetName(command);
        if (name.IsEmpty) throw new ArgumentOutOfRangeException(nameof(command));
        var span = output.GetSpan(name.Length + 1);
        name.CopyTo(span);
        span[name.Length] = Lf;
        output.Advance(name.Length + 1);
    }

    /// <summary>Writes one header line from UTF-8 bytes, escaping as <paramref name="escape"/> says.</summary>
    public static void WriteHeader(IBufferWriter<byte> output, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, StompEscaping escape = StompEscaping.V1_2)
    {
        WriteEscaped(output, name, escape);
        WriteByte(output, Colon);
        WriteEscaped(output, value, escape);
        WriteByte(output, Lf);
    }

    /// <summary>Writes one header line from text, encoded as UTF-8 and escaped, without allocating.</summary>
    public static void WriteHeader(IBufferWriter<byte> output, ReadOnlySpan<char> name, ReadOnlySpan<char> value, StompEscaping escape = StompEscaping.V1_2)
    {
        WriteEscaped(output, name, escape);
        WriteByte(output, Colon);
        WriteEscaped(output, value, escape);
        WriteByte(output, Lf);
    }

    /// <summary>Writes one header line with a number value.</summary>
    public static void WriteHeader(IBufferWriter<byte> output, ReadOnlySpan<byte> name, long value)
    {
        var span = output.GetSpan(name.Length + 22);
        name.CopyTo(span);
        span[name.Length] = Colon;
        Utf8Formatter.TryFormat(value, span[(name.Length + 1)..], out var written);
        span[name.Length + 1 + written] = Lf;
        output.Advance(name.Length + written + 2);
    }

    /// <summary>Writes <c>content-length</c> (when asked), the blank line, the body and the NUL that ends the frame.</summary>
    public static void WriteBodyAndEnd(IBufferWriter<byte> output, ReadOnlySpan<byte> body, bool writeContentLength = true)
    {
        if (writeContentLength) WriteHeader(output, "content-length"u8, body.Length);
        var span = output.GetSpan(body.Length + 2);
        span[0] = Lf;
        body.CopyTo(span[1..]);
        span[body.Length + 1] = 0;
        output.Advance(body.Length + 2);
    }

    /// <summary>Writes <c>content-length</c> (when asked), the blank line, a multi-segment body and the NUL.</summary>
    public static void WriteBodyAndEnd(IBufferWriter<byte> output, in ReadOnlySequence<byte> body, bool writeContentLength = true)
    {
        if (body.IsSingleSegment)
        {
            WriteBodyAndEnd(output, body.FirstSpan, writeContentLength);
            return;
        }
        if (writeContentLength) WriteHeader(output, "content-length"u8, body.Length);
        WriteByte(output, Lf);
        foreach (var segment in body)
        {
            var span = output.GetSpan(segment.Length);
            segment.Span.CopyTo(span);
            output.Advance(segment.Length);
        }
        WriteByte(output, 0);
    }

    /// <summary>Writes <c>content-length</c> (when asked), the blank line, a text body encoded as UTF-8 and the NUL, without
    /// allocating.</summary>
    public static void WriteTextBodyAndEnd(IBufferWriter<byte> output, ReadOnlySpan<char> body, bool writeContentLength = true)
    {
        var length = Encoding.UTF8.GetByteCount(body);
        if (writeContentLength) WriteHeader(output, "content-length"u8, length);
        var span = output.GetSpan(length + 2);
        span[0] = Lf;
        Encoding.UTF8.GetBytes(body, span[1..]);
        span[length + 1] = 0;
        output.Advance(length + 2);
    }

    /// <summary>
    /// Writes a whole RECEIPT frame without allocating. <paramref name="receiptId"/> is the value of the client frame's
    /// <c>receipt</c> header as <see cref="StompFrameView.TryGetHeader"/> returns it: raw UTF-8, already unescaped. It is
    /// escaped here as <paramref name="version"/> requires, so the client reads back exactly what it sent (STOMP 1.2:
    /// "the receipt-id header whose value is the value of the receipt header in the frame which this is a receipt for").
    /// </summary>
    public static void WriteReceipt(IBufferWriter<byte> output, ReadOnlySpan<byte> receiptId, StompVersion version)
    {
        WriteCommand(output, StompCommand.Receipt);
        WriteHeader(output, "receipt-id"u8, receiptId, EscapeMode(StompCommand.Receipt, version));
        WriteBodyAndEnd(output, ReadOnlySpan<byte>.Empty, writeContentLength: false);
    }

    /// <summary>
    /// Writes a whole ERROR frame without allocating: <c>message</c> (a short client-safe text), <c>receipt-id</c> when
    /// <paramref name="receiptId"/> is not empty (raw unescaped UTF-8, as for <see cref="WriteReceipt"/>), <c>version</c>
    /// listing <see cref="StompVersions.Supported"/> when <paramref name="listSupportedVersions"/> (STOMP 1.2: an ERROR that
    /// refuses the client's versions "SHOULD set the version header"), <c>content-type:text/plain</c>, and a body of
    /// <paramref name="detail"/>, or of <paramref name="message"/> when <paramref name="detail"/> is empty.
    /// </summary>
    public static void WriteError(IBufferWriter<byte> output, ReadOnlySpan<char> message, ReadOnlySpan<byte> receiptId,
        StompVersion version, ReadOnlySpan<char> detail = default, bool listSupportedVersions = false)
    {
        var escape = EscapeMode(StompCommand.Error, version);
        WriteCommand(output, StompCommand.Error);
        WriteHeader(output, "message", message, escape);
        if (!receiptId.IsEmpty) WriteHeader(output, "receipt-id"u8, receiptId, escape);
        if (listSupportedVersions) WriteHeader(output, "version"u8, s_supportedVersions, escape);
        WriteHeader(output, "content-type"u8, "text/plain"u8, escape);
        WriteTextBodyAndEnd(output, detail.IsEmpty ? message : detail);
    }

    /// <summary>Writes a heart-beat: one EOL.</summary>
    public static void WriteHeartBeat(IBufferWriter<byte> output) => WriteByte(output, Lf);

    /// <summary>Copies pre-serialised bytes (for example the shared tail of a fan-out MESSAGE).</summary>
    public static void WriteRaw(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes)
    {
        var span = output.GetSpan(bytes.Length);
        bytes.CopyTo(span);
        output.Advance(bytes.Length);
    }

    private static void WriteByte(IBufferWriter<byte> output, byte value)
    {
        output.GetSpan(1)[0] = value;
        output.Advance(1);
    }

    private static void WriteEscaped(IBufferWriter<byte> output, ReadOnlySpan<byte> text, StompEscaping escape)
    {
        var first = text.IndexOfAny(escape == StompEscaping.None ? s_lineBreaks : s_needsEscape);
        if (first < 0)
        {
            WriteRaw(output, text);
            return;
        }
        var span = output.GetSpan(text.Length * 2);
        text[..first].CopyTo(span);
        var written = first;
        for (var i = first; i < text.Length; i++)
        {
            var b = text[i];
            var escaped = Escape(b, escape);
            if (escaped == 0)
            {
                span[written++] = b;
            }
            else if (escaped == Space)
            {
                span[written++] = Space;
            }
            else
            {
                span[written++] = Backslash;
                span[written++] = escaped;
            }
        }
        output.Advance(written);
    }

    private static void WriteEscaped(IBufferWriter<byte> output, ReadOnlySpan<char> text, StompEscaping escape)
    {
        var first = escape == StompEscaping.None ? text.IndexOfAny('\r', '\n') : text.IndexOfAny(s_needsEscapeChars);
        if (first < 0)
        {
            var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
            var written = Encoding.UTF8.GetBytes(text, span);
            output.Advance(written);
            return;
        }
        // Rare path: encode the runs between special characters; each special character becomes 1 or 2 ASCII bytes.
        // Runs only break at ASCII characters, so a surrogate pair is never split.
        var start = 0;
        for (var i = first; i <= text.Length; i++)
        {
            var escaped = i < text.Length && text[i] < 0x80 ? Escape((byte)text[i], escape) : (byte)0;
            if (escaped == 0 && i < text.Length) continue;
            var chunk = text[start..i];
            var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(chunk.Length) + 2);
            var written = Encoding.UTF8.GetBytes(chunk, span);
            if (escaped == Space)
            {
                span[written++] = Space;
            }
            else if (escaped != 0)
            {
                span[written++] = Backslash;
                span[written++] = escaped;
            }
            output.Advance(written);
            start = i + 1;
        }
    }

    /// <summary>
    /// What replaces <paramref name="b"/> in a header: 0 = itself; <see cref="Space"/> = a space; otherwise the letter after
    /// a backslash. Without escaping (STOMP 1.0, CONNECT, CONNECTED) CR and LF cannot be represented; written raw they would
    /// end the header line early and let a value inject headers or end the header block, so they become spaces.
    /// STOMP 1.1 has no escape for CR: it is written as is (a 1.1 EOL is a bare LF, so it stays part of the value).
    /// </summary>
    private static byte Escape(byte b, StompEscaping escape) => (b, escape) switch
    {
        ((byte)'\r' or Lf, StompEscaping.None) => Space,
        (_, StompEscaping.None) => 0,
        (Backslash, _) => Backslash,
        (Lf, _) => (byte)'n',
        (Colon, _) => (byte)'c',
        ((byte)'\r', StompEscaping.V1_2) => (byte)'r',
        _ => 0,
    };
}

/// <summary>Which header escaping applies when writing.</summary>
public enum StompEscaping : byte
{
    /// <summary>STOMP 1.0, CONNECT and CONNECTED: no escaping. CR and LF are written as spaces (they would end the line);
    /// a ':' in a name cannot be told from the separator, so callers keep it out of names.</summary>
    None,
    /// <summary>STOMP 1.1: \n, \c and \\.</summary>
    V1_1,
    /// <summary>STOMP 1.2: \r, \n, \c and \\.</summary>
    V1_2,
}
