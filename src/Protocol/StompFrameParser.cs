// STOMP 1.2 frame grammar (https://stomp.github.io/stomp-specification-1.2.html#Augmented_BNF):
//   frame       = command EOL *( header EOL ) EOL *OCTET NULL *( EOL )
//   command     = client-command | server-command
//   header      = header-name ":" header-value
//   header-name = 1*<any OCTET except CR or LF or ":">
//   header-value= *<any OCTET except CR or LF or ":">   (after unescaping; the first ":" ends the name)
//   EOL         = [CR] LF
// Heart-beats are bare EOLs between frames. A body is exactly content-length octets when that header is present,
// otherwise everything up to the first NUL. Version rules: 1.0 has no header escaping and LF-only EOLs; 1.1 escapes
// \n \c \\ with LF-only EOLs; 1.2 adds \r and CRLF EOLs. CONNECT and CONNECTED frames are never unescaped.
using System.Buffers;
using System.Buffers.Text;
using System.Text.Unicode;

namespace WsBroker.Protocol;

/// <summary>
/// A resumable, bounded, allocation-free STOMP frame parser. One instance per connection: it keeps scratch buffers for
/// unescaped headers and reuses them for every frame. After <see cref="TryParse(ref ReadOnlySequence{byte}, out StompParseError)"/>
/// returns <see cref="OperationStatus.Done"/>, <see cref="Frame"/> describes the frame until the next call or until the
/// input buffer is released (the body is a slice of the input).
/// </summary>
public sealed class StompFrameParser
{
    private const byte Lf = (byte)'\n';
    private const byte Cr = (byte)'\r';
    private const byte Nul = 0;
    private const byte Colon = (byte)':';
    private const byte Backslash = (byte)'\\';

    private readonly StompLimits _limits;
    private byte[] _text = new byte[256];
    private int _textLength;
    private HeaderSlot[] _slots = new HeaderSlot[8];
    private int _headerCount;
    private byte[]? _lineScratch;
    private StompCommand _command;
    private ReadOnlySequence<byte> _body;

    /// <summary>Creates a parser. <paramref name="version"/> is the negotiated version; a server starts at 1.2 for the
    /// CONNECT frame (which is never unescaped) and sets <see cref="Version"/> after negotiation.</summary>
    public StompFrameParser(StompLimits? limits = null, StompVersion version = StompVersion.V1_2)
    {
        _limits = limits ?? StompLimits.Default;
        _limits.Validate();
        Version = version;
    }

    /// <summary>The protocol version whose escaping and EOL rules apply.</summary>
    public StompVersion Version { get; set; }

    /// <summary>The limits this parser enforces.</summary>
    public StompLimits Limits => _limits;

    /// <summary>The frame parsed by the last successful <c>TryParse</c>.</summary>
    public StompFrameView Frame => new(this);

    internal StompCommand Command => _command;
    internal int HeaderCount => _headerCount;
    internal ReadOnlySequence<byte> Body => _body;

    /// <summary>
    /// After <see cref="OperationStatus.InvalidData"/>: the <c>receipt</c> header of the rejected frame when it was read
    /// before the error (a body or header count over a limit, a bad content-length), so the ERROR can carry
    /// <c>receipt-id</c>; otherwise null. Allocates only in that case.
    /// </summary>
    public string? ReceiptOfInvalidFrame =>
        _command == StompCommand.None && TryGetFirst("receipt"u8, out var value) ? System.Text.Encoding.UTF8.GetString(value) : null;
    internal ReadOnlySpan<byte> GetName(int index) => _text.AsSpan(_slots[index].NameStart, _slots[index].NameLength);
    internal ReadOnlySpan<byte> GetValue(int index) => _text.AsSpan(_slots[index].ValueStart, _slots[index].ValueLength);

    /// <summary>
    /// Parses one frame from the start of <paramref name="buffer"/>. On <see cref="OperationStatus.Done"/> the buffer is
    /// sliced past the frame; on <see cref="OperationStatus.NeedMoreData"/> it is sliced past any heart-beat EOLs only;
    /// on <see cref="OperationStatus.InvalidData"/> <paramref name="error"/> says why. Never throws on bad input.
    /// </summary>
    public OperationStatus TryParse(ref ReadOnlySequence<byte> buffer, out StompParseError error)
    {
        error = StompParseError.None;
        _command = StompCommand.None;
        _headerCount = 0;
        _textLength = 0;
        _body = default;

        var reader = new SequenceReader<byte>(buffer);
        // Heart-beats are bare EOLs between frames: consume them even when no frame follows.
        while (reader.IsNext(Lf, advancePast: true) || reader.IsNext("\r\n"u8, advancePast: true)) { }
        buffer = buffer.Slice(reader.Position);
        reader = new SequenceReader<byte>(buffer);

        var crlf = Version >= StompVersion.V1_2;
        var status = ReadLine(ref reader, crlf, out var line);
        if (status != LineStatus.Done) return NotYet(status, buffer, out error);
        if (!StompCommands.TryParse(line, out var command)) return Invalid(StompParseError.UnknownCommand, out error);

        var escaping = Version >= StompVersion.V1_1 && command.UsesHeaderEscaping();
        var crEscape = Version >= StompVersion.V1_2;
        while (true)
        {
            status = ReadLine(ref reader, crlf, out line);
            if (status != LineStatus.Done) return NotYet(status, buffer, out error);
            // The header block alone may not fill the frame limit (the NUL still follows): checked here, not only while
            // buffering, so a frame that arrives whole gets the same answer as one that trickles in.
            if (reader.Consumed >= _limits.MaxFrameBytes) return Invalid(StompParseError.FrameTooLarge, out error);
            if (line.IsEmpty) break;                                   // a blank line ends the header block
            if (_headerCount == _limits.MaxHeaderCount) return Invalid(StompParseError.TooManyHeaders, out error);
            var headerError = AddHeader(line, escaping, crEscape);
            if (headerError != StompParseError.None) return Invalid(headerError, out error);
        }

        var headerBytes = reader.Consumed;
        var maxBody = (int)Math.Min(_limits.MaxBodyBytes, Math.Max(0, _limits.MaxFrameBytes - headerBytes - 1));
        ReadOnlySequence<byte> body;
        if (TryGetFirst("content-length"u8, out var lengthText))
        {
            // STOMP 1.2: "If a content-length header is included, this number of octets MUST be read, regardless of NUL octets".
            if (!Utf8Parser.TryParse(lengthText, out long length, out var used) || used != lengthText.Length || length < 0
                || lengthText.IsEmpty || lengthText[0] is (byte)'+' or (byte)'-')
                return Invalid(StompParseError.InvalidContentLength, out error);
            if (length > _limits.MaxBodyBytes) return Invalid(StompParseError.BodyTooLarge, out error);
            if (length > maxBody) return Invalid(StompParseError.FrameTooLarge, out error);
            if (reader.Remaining <= length) return NotYet(LineStatus.NeedMore, buffer, out error);
            body = reader.UnreadSequence.Slice(0, length);
            reader.Advance(length);
            if (!reader.IsNext(Nul, advancePast: true)) return Invalid(StompParseError.MissingNul, out error);
        }
        else
        {
            var window = reader.UnreadSequence;
            if (window.Length > (long)maxBody + 1) window = window.Slice(0, maxBody + 1);
            var nul = window.PositionOf(Nul);
            if (nul is null)
            {
                if (window.Length <= maxBody) return NotYet(LineStatus.NeedMore, buffer, out error);
                return Invalid(maxBody == _limits.MaxBodyBytes ? StompParseError.BodyTooLarge : StompParseError.FrameTooLarge, out error);
            }
            body = window.Slice(0, nul.Value);
            reader.Advance(body.Length + 1);
        }
        if (!body.IsEmpty && !command.MayHaveBody()) return Invalid(StompParseError.BodyNotAllowed, out error);

        _command = command;
        _body = body;
        buffer = buffer.Slice(reader.Position);
        return OperationStatus.Done;
    }

    /// <summary>Allocating convenience: parses one frame and copies it into a <see cref="StompFrame"/> the caller owns.</summary>
    public static OperationStatus TryParse(ref ReadOnlySequence<byte> buffer, StompLimits limits, out StompFrame? frame,
        out StompParseError error, StompVersion version = StompVersion.V1_2)
    {
        var parser = new StompFrameParser(limits, version);
        var status = parser.TryParse(ref buffer, out error);
        frame = status == OperationStatus.Done ? parser.Frame.ToFrame() : null;
        return status;
    }

    private OperationStatus NotYet(LineStatus status, in ReadOnlySequence<byte> buffer, out StompParseError error)
    {
        if (status == LineStatus.TooLong) return Invalid(StompParseError.HeaderLineTooLong, out error);
        // Everything buffered belongs to one unfinished frame: past the frame limit it can never become valid.
        if (buffer.Length > _limits.MaxFrameBytes) return Invalid(StompParseError.FrameTooLarge, out error);
        error = StompParseError.None;
        return OperationStatus.NeedMoreData;
    }

    private OperationStatus Invalid(StompParseError reason, out StompParseError error)
    {
        error = reason;
        _command = StompCommand.None;
        return OperationStatus.InvalidData;
    }

    private enum LineStatus { Done, NeedMore, TooLong }

    private LineStatus ReadLine(ref SequenceReader<byte> reader, bool crlf, out ReadOnlySpan<byte> line)
    {
        var max = _limits.MaxHeaderLineBytes + 1;                      // + 1 for an optional CR
        var span = reader.UnreadSpan;
        var lf = span.Length > max ? span[..(max + 1)].IndexOf(Lf) : span.IndexOf(Lf);
        if (lf >= 0)
        {
            line = span[..lf];
            reader.Advance(lf + 1);
        }
        else if (span.Length > max)
        {
            line = default;
            return LineStatus.TooLong;
        }
        else
        {
            // The line crosses a segment boundary: copy it into the scratch buffer (bounded by the line limit).
            var window = reader.UnreadSequence;
            if (window.Length > max + 1) window = window.Slice(0, max + 1);
            var position = window.PositionOf(Lf);
            if (position is null)
            {
                line = default;
                return window.Length > max ? LineStatus.TooLong : LineStatus.NeedMore;
            }
            var slice = window.Slice(0, position.Value);
            _lineScratch ??= new byte[max];
            slice.CopyTo(_lineScratch);
            line = _lineScratch.AsSpan(0, (int)slice.Length);
            reader.Advance(slice.Length + 1);
        }
        if (crlf && !line.IsEmpty && line[^1] == Cr) line = line[..^1];
        return line.Length > _limits.MaxHeaderLineBytes ? LineStatus.TooLong : LineStatus.Done;
    }

    private StompParseError AddHeader(ReadOnlySpan<byte> line, bool escaping, bool crEscape)
    {
        var colon = line.IndexOf(Colon);
        if (colon <= 0) return StompParseError.MalformedHeader;
        // STOMP 1.2: a CR in a header is sent as "\r"; a raw one (other than the CRLF line end, already removed) is invalid.
        if (crEscape && escaping && line.IndexOf(Cr) >= 0) return StompParseError.MalformedHeader;
        if (!Utf8.IsValid(line)) return StompParseError.InvalidUtf8;
        if (_text.Length < _textLength + line.Length) Array.Resize(ref _text, Math.Max(_text.Length * 2, _textLength + line.Length));
        if (_headerCount == _slots.Length) Array.Resize(ref _slots, _slots.Length * 2);

        ref var slot = ref _slots[_headerCount];
        slot.NameStart = _textLength;
        var written = Copy(line[..colon], _text.AsSpan(_textLength), escaping, crEscape);
        if (written < 0) return StompParseError.InvalidEscape;
        slot.NameLength = written;
        _textLength += written;
        slot.ValueStart = _textLength;
        written = Copy(line[(colon + 1)..], _text.AsSpan(_textLength), escaping, crEscape);
        if (written < 0) return StompParseError.InvalidEscape;
        slot.ValueLength = written;
        _textLength += written;
        _headerCount++;
        return StompParseError.None;
    }

    /// <summary>Copies <paramref name="source"/>, undoing STOMP escapes when asked; -1 for an undefined escape.</summary>
    private static int Copy(ReadOnlySpan<byte> source, Span<byte> destination, bool escaping, bool crEscape)
    {
        var backslash = escaping ? source.IndexOf(Backslash) : -1;
        if (backslash < 0)
        {
            source.CopyTo(destination);
            return source.Length;
        }
        source[..backslash].CopyTo(destination);
        var written = backslash;
        for (var i = backslash; i < source.Length; i++)
        {
            var b = source[i];
            if (b != Backslash)
            {
                destination[written++] = b;
                continue;
            }
            if (++i == source.Length) return -1;                        // a trailing lone backslash
            destination[written++] = source[i] switch
            {
                (byte)'n' => Lf,
                (byte)'c' => Colon,
                Backslash => Backslash,
                (byte)'r' when crEscape => Cr,
                _ => 0,
            };
            if (destination[written - 1] == 0) return -1;               // STOMP 1.2: undefined escapes MUST be a fatal error
        }
        return written;
    }

    internal bool TryGetFirst(ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        for (var i = 0; i < _headerCount; i++)
        {
            if (GetName(i).SequenceEqual(name))
            {
                value = GetValue(i);
                return true;
            }
        }
        value = default;
        return false;
    }

    private struct HeaderSlot
    {
        public int NameStart;
        public int NameLength;
        public int ValueStart;
        public int ValueLength;
    }
}

/// <summary>
/// A parsed frame as views into its parser's buffers and the input: valid until the parser parses again or the input
/// buffer is released. Copy what must outlive that (<see cref="ToFrame"/> copies everything).
/// </summary>
public readonly struct StompFrameView
{
    private readonly StompFrameParser _parser;

    internal StompFrameView(StompFrameParser parser) => _parser = parser;

    public StompCommand Command => _parser.Command;

    /// <summary>Header entries in wire order, repeated names included.</summary>
    public int HeaderCount => _parser.HeaderCount;

    /// <summary>The (unescaped) name of the entry at <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> GetHeaderName(int index) => (uint)index < (uint)HeaderCount ? _parser.GetName(index) : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>The (unescaped) value of the entry at <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> GetHeaderValue(int index) => (uint)index < (uint)HeaderCount ? _parser.GetValue(index) : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>The first value of a header (STOMP 1.2: repeated entries after the first are ignored).</summary>
    public bool TryGetHeader(ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value) => _parser.TryGetFirst(name, out value);

    /// <summary>True when the header is present (even with an empty value).</summary>
    public bool HasHeader(ReadOnlySpan<byte> name) => _parser.TryGetFirst(name, out _);

    /// <summary>The first value of a header as a string (allocates), or null.</summary>
    public string? GetHeaderString(ReadOnlySpan<byte> name) =>
        _parser.TryGetFirst(name, out var value) ? System.Text.Encoding.UTF8.GetString(value) : null;

    /// <summary>The body: a slice of the parser's input.</summary>
    public ReadOnlySequence<byte> Body => _parser.Body;

    /// <summary>Copies the frame into a <see cref="StompFrame"/> the caller owns.</summary>
    public StompFrame ToFrame()
    {
        var headers = new StompHeaders(HeaderCount);
        for (var i = 0; i < HeaderCount; i++)
            headers.Add(System.Text.Encoding.UTF8.GetString(_parser.GetName(i)), System.Text.Encoding.UTF8.GetString(_parser.GetValue(i)));
        return new StompFrame(Command, headers, Body.IsEmpty ? ReadOnlyMemory<byte>.Empty : Body.ToArray());
    }
}
