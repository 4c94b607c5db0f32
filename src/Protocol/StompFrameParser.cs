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

namespace WsBroker.Protocol;

/// <summary>
/// A resumable, bounded, allocation-free STOMP frame parser. One instance per connection: it keeps the unescaped headers
/// in a <see cref="StompHeaderBlock"/>, whose arrays come from the shared pools and serve every frame;
/// <see cref="ReleaseScratch"/> gives them back between frames, so that an idle connection's parser holds no array. After <see cref="TryParse(ref ReadOnlySequence{byte}, out StompParseError)"/>
/// returns <see cref="OperationStatus.Done"/>, <see cref="Frame"/> describes the frame until the next call or until the
/// input buffer is released (the body is a slice of the input).
/// </summary>
public sealed class StompFrameParser
{
    private const byte Lf = (byte)'\n';
    private const byte Cr = (byte)'\r';
    private const byte Nul = 0;

    private readonly StompLimits _limits;

    private StompHeaderBlock _headers;                                 // its arrays rented on the first header (see ReleaseScratch)
    private byte[]? _lineScratch;                                      // rented for a line that crosses segments
    private StompCommand _command;
    private ReadOnlySequence<byte> _body;

    // What TryParseNext knows about the unfinished frame it left at the start of its buffer (see ParsePhase).
    private long _partialBytes;                                        // its length when last seen; 0 = none
    private ParsePhase _phase;
    private long _resumeAt;                                            // Headers: start of the unfinished line; Body: body start
    private long _contentLength;                                       // Body: -1 when the body ends at the first NUL
    private StompCommand _partialCommand;

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
    internal long ParseRuns { get; private set; }                     // tests: TryParseNext's work stays linear
    internal int HeaderCount => _headers.Count;
    internal ReadOnlySequence<byte> Body => _body;

    /// <summary>
    /// After <see cref="OperationStatus.InvalidData"/>: the <c>receipt</c> header of the rejected frame when it was read
    /// before the error (a body or header count over a limit, a bad content-length), so the ERROR can carry
    /// <c>receipt-id</c>; otherwise null. Allocates only in that case.
    /// </summary>
    public string? ReceiptOfInvalidFrame =>
        TryGetReceiptOfInvalidFrame(out var value) ? System.Text.Encoding.UTF8.GetString(value) : null;

    /// <summary>
    /// The allocation-free form of <see cref="ReceiptOfInvalidFrame"/>: after <see cref="OperationStatus.InvalidData"/>, the
    /// (unescaped) value of the rejected frame's <c>receipt</c> header when it was read before the error. The span points into
    /// the parser's scratch buffer and is valid until the next parse.
    /// </summary>
    public bool TryGetReceiptOfInvalidFrame(out ReadOnlySpan<byte> receiptId)
    {
        if (_command == StompCommand.None && TryGetFirst("receipt"u8, out receiptId)) return true;
        receiptId = default;
        return false;
    }

    /// <summary>
    /// Length of the unfinished frame that the last <see cref="TryParseNext"/> left at the start of its buffer (it returned
    /// <see cref="OperationStatus.NeedMoreData"/> with bytes other than heart-beats left); 0 when the buffer ended at a frame
    /// boundary. A transport that closes connections whose frame stays half-sent too long starts its clock when this becomes
    /// non-zero and stops it when a frame completes.
    /// </summary>
    public long PartialFrameBytes => _partialBytes;

    /// <summary>True when <see cref="PartialFrameBytes"/> is non-zero: part of a frame has arrived, not all of it.</summary>
    public bool HasPartialFrame => _partialBytes > 0;

    /// <summary>
    /// Gives the header scratch buffers back to the pools unless a frame is half-parsed (<see cref="HasPartialFrame"/>: its
    /// header lines are kept in them), so that a parser between frames holds no array; the next header rents them again.
    /// Call it once the frames parsed so far have been handled: <see cref="Frame"/> is empty afterwards.
    /// </summary>
    public void ReleaseScratch()
    {
        if (HasPartialFrame) return;
        _command = StompCommand.None;
        _body = default;
        _headers.Release();
        if (_lineScratch is not null) ArrayPool<byte>.Shared.Return(_lineScratch);
        _lineScratch = null;
    }

    internal ReadOnlySpan<byte> GetName(int index) => _headers.GetName(index);
    internal ReadOnlySpan<byte> GetValue(int index) => _headers.GetValue(index);

    /// <summary>
    /// Parses one frame from the start of <paramref name="buffer"/>. On <see cref="OperationStatus.Done"/> the buffer is
    /// sliced past the frame; on <see cref="OperationStatus.NeedMoreData"/> it is sliced past any heart-beat EOLs only;
    /// on <see cref="OperationStatus.InvalidData"/> <paramref name="error"/> says why. Never throws on bad input.
    /// Every call starts from scratch: <paramref name="buffer"/> need not continue an earlier one (see
    /// <see cref="TryParseNext"/> for a connection's byte stream).
    /// </summary>
    public OperationStatus TryParse(ref ReadOnlySequence<byte> buffer, out StompParseError error)
    {
        _partialBytes = 0;
        return Parse(ref buffer, resume: false, out error);
    }

    /// <summary>
    /// Parses the next frame of one connection's byte stream: the same answers as
    /// <see cref="TryParse(ref ReadOnlySequence{byte}, out StompParseError)"/> on the same bytes, at a cost linear in the
    /// bytes however they are split. After <see cref="OperationStatus.NeedMoreData"/> it remembers the unfinished frame
    /// (<see cref="PartialFrameBytes"/>): the header lines already read, where its body starts, its content-length. The next
    /// call then looks only at the bytes new since, and parses only when they can change the answer: a line ended (so a
    /// bad header, or a content-length over the limit, is refused as soon as its header block is complete), a limit was
    /// crossed, the content-length body is complete, or a NUL arrived.
    /// Contract: after <see cref="OperationStatus.NeedMoreData"/>, pass the same unfinished frame again with what arrived
    /// since appended (a pipe reader's <c>AdvanceTo(buffer.Start, buffer.End)</c> does exactly that). A shorter buffer
    /// starts over; so does a call to <c>TryParse</c>.
    /// </summary>
    public OperationStatus TryParseNext(ref ReadOnlySequence<byte> buffer, out StompParseError error)
    {
        var resume = _partialBytes > 0 && buffer.Length >= _partialBytes;
        if (resume && !MayProgress(buffer))
        {
            _partialBytes = buffer.Length;
            _command = StompCommand.None;
            _body = default;
            error = StompParseError.None;
            return OperationStatus.NeedMoreData;
        }
        // An unfinished command line is read again from the start: what looked like a frame may be a CRLF heart-beat.
        var status = Parse(ref buffer, resume && _phase != ParsePhase.Command, out error);
        _partialBytes = status == OperationStatus.NeedMoreData ? buffer.Length : 0;
        return status;
    }

    /// <summary>Whether the bytes that arrived since the unfinished frame was last parsed can change the answer.</summary>
    private bool MayProgress(in ReadOnlySequence<byte> buffer)
    {
        if (buffer.Length > _limits.MaxFrameBytes) return true;
        var arrived = buffer.Slice(_partialBytes);
        return _phase switch
        {
            // A line ends only at an LF; until then only the line limit can be crossed.
            ParsePhase.Command or ParsePhase.Headers =>
                arrived.PositionOf(Lf) is not null || buffer.Length - _resumeAt > _limits.MaxHeaderLineBytes + 1,
            // STOMP 1.2: with content-length, exactly that many octets and then the NUL, whatever NULs the body holds.
            _ when _contentLength >= 0 => buffer.Length - _resumeAt > _contentLength,
            // Otherwise the body ends at the first NUL, or is too large once it has more octets than allowed.
            _ => arrived.PositionOf(Nul) is not null || buffer.Length - _resumeAt > MaxBody(_resumeAt),
        };
    }

    private OperationStatus Parse(ref ReadOnlySequence<byte> buffer, bool resume, out StompParseError error)
    {
        ParseRuns++;
        error = StompParseError.None;
        _command = StompCommand.None;
        _body = default;

        var crlf = Version >= StompVersion.V1_2;
        StompCommand command;
        SequenceReader<byte> reader;
        scoped ReadOnlySpan<byte> line;
        LineStatus status;
        if (resume)
        {
            // TryParseNext: the command and the complete header lines of this frame were read by an earlier call.
            command = _partialCommand;
            reader = new SequenceReader<byte>(buffer);
            reader.Advance(_resumeAt);
        }
        else
        {
            _headers.Clear();
            reader = new SequenceReader<byte>(buffer);
            // Heart-beats are bare EOLs between frames: consume them even when no frame follows.
            while (reader.IsNext(Lf, advancePast: true) || reader.IsNext("\r\n"u8, advancePast: true)) { }
            buffer = buffer.Slice(reader.Position);
            reader = new SequenceReader<byte>(buffer);

            status = ReadLine(ref reader, crlf, out line);
            if (status != LineStatus.Done) return NotYet(status, buffer, ParsePhase.Command, StompCommand.None, 0, -1, out error);
            if (!StompCommands.TryParse(line, out command)) return Invalid(StompParseError.UnknownCommand, out error);
        }

        long headerBytes;
        long contentLength;
        if (resume && _phase == ParsePhase.Body)
        {
            headerBytes = _resumeAt;
            contentLength = _contentLength;
        }
        else
        {
            var escaping = Version >= StompVersion.V1_1 && command.UsesHeaderEscaping();
            var crEscape = Version >= StompVersion.V1_2;
            while (true)
            {
                var lineStart = reader.Consumed;
                status = ReadLine(ref reader, crlf, out line);
                if (status != LineStatus.Done) return NotYet(status, buffer, ParsePhase.Headers, command, lineStart, -1, out error);
                // The header block alone may not fill the frame limit (the NUL still follows): checked here, not only while
                // buffering, so a frame that arrives whole gets the same answer as one that trickles in.
                if (reader.Consumed >= _limits.MaxFrameBytes) return Invalid(StompParseError.FrameTooLarge, out error);
                if (line.IsEmpty) break;                                   // a blank line ends the header block
                if (_headers.Count == _limits.MaxHeaderCount) return Invalid(StompParseError.TooManyHeaders, out error);
                var headerError = _headers.Add(line, escaping, crEscape);
                if (headerError != StompParseError.None) return Invalid(headerError, out error);
            }
            headerBytes = reader.Consumed;
            contentLength = -1;
            if (TryGetFirst("content-length"u8, out var lengthText))
            {
                // STOMP 1.2: "If a content-length header is included, this number of octets MUST be read, regardless of
                // NUL octets". Only a plain decimal integer is a length: no sign, no spaces, nothing past long.MaxValue.
                if (lengthText.IsEmpty || lengthText[0] is (byte)'+' or (byte)'-'
                    || !Utf8Parser.TryParse(lengthText, out contentLength, out var used) || used != lengthText.Length)
                    return Invalid(StompParseError.InvalidContentLength, out error);
                // Refused as soon as the header block is complete: a body that may never fit is not waited for.
                if (contentLength > _limits.MaxBodyBytes) return Invalid(StompParseError.BodyTooLarge, out error);
                if (contentLength > MaxBody(headerBytes)) return Invalid(StompParseError.FrameTooLarge, out error);
            }
        }

        var maxBody = MaxBody(headerBytes);
        ReadOnlySequence<byte> body;
        if (contentLength >= 0)
        {
            if (reader.Remaining <= contentLength)
                return NotYet(LineStatus.NeedMore, buffer, ParsePhase.Body, command, headerBytes, contentLength, out error);
            body = reader.UnreadSequence.Slice(0, contentLength);
            reader.Advance(contentLength);
            if (!reader.IsNext(Nul, advancePast: true)) return Invalid(StompParseError.MissingNul, out error);
        }
        else
        {
            var window = reader.UnreadSequence;
            if (window.Length > (long)maxBody + 1) window = window.Slice(0, maxBody + 1);
            var nul = window.PositionOf(Nul);
            if (nul is null)
            {
                if (window.Length <= maxBody)
                    return NotYet(LineStatus.NeedMore, buffer, ParsePhase.Body, command, headerBytes, -1, out error);
                return Invalid(maxBody == _limits.MaxBodyBytes ? StompParseError.BodyTooLarge : StompParseError.FrameTooLarge, out error);
            }
            body = window.Slice(0, nul.Value);
            reader.Advance(body.Length + 1);
        }
        if (!body.IsEmpty && !command.MayHaveBody())
        {
            // Some STOMP 1.0 clients end CONNECT with an EOL before the NUL. STOMP 1.2 allows EOLs only after the NUL, but a
            // lone EOL carries nothing: it is read as an empty body. Any other body stays an error.
            if (command is StompCommand.Connect or StompCommand.Stomp && IsSingleEol(body)) body = body.Slice(body.Length);
            else return Invalid(StompParseError.BodyNotAllowed, out error);
        }

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

    /// <summary>The frame is unfinished: an error if it can never become valid, otherwise NeedMoreData, remembering where
    /// it stopped for <see cref="TryParseNext"/>.</summary>
    private OperationStatus NotYet(LineStatus status, in ReadOnlySequence<byte> buffer, ParsePhase phase, StompCommand command,
        long resumeAt, long contentLength, out StompParseError error)
    {
        if (status == LineStatus.TooLong) return Invalid(StompParseError.HeaderLineTooLong, out error);
        // Everything buffered belongs to one unfinished frame: past the frame limit it can never become valid.
        if (buffer.Length > _limits.MaxFrameBytes) return Invalid(StompParseError.FrameTooLarge, out error);
        _phase = phase;
        _partialCommand = command;
        _resumeAt = resumeAt;
        _contentLength = contentLength;
        error = StompParseError.None;
        return OperationStatus.NeedMoreData;
    }

    /// <summary>The largest body a frame whose header block is <paramref name="headerBytes"/> long may have.</summary>
    private int MaxBody(long headerBytes) => (int)Math.Min(_limits.MaxBodyBytes, Math.Max(0, _limits.MaxFrameBytes - headerBytes - 1));

    private static bool IsSingleEol(in ReadOnlySequence<byte> body)
    {
        if (body.Length == 1) return body.FirstSpan[0] == Lf;
        if (body.Length != 2) return false;
        Span<byte> two = stackalloc byte[2];
        body.CopyTo(two);
        return two[0] == Cr && two[1] == Lf;
    }

    /// <summary>Where an unfinished frame stopped: in its command line, in its header lines, or in its body.</summary>
    private enum ParsePhase : byte { Command, Headers, Body }

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
            _lineScratch ??= ArrayPool<byte>.Shared.Rent(max);
            slice.CopyTo(_lineScratch);
            line = _lineScratch.AsSpan(0, (int)slice.Length);
            reader.Advance(slice.Length + 1);
        }
        if (crlf && !line.IsEmpty && line[^1] == Cr) line = line[..^1];
        return line.Length > _limits.MaxHeaderLineBytes ? LineStatus.TooLong : LineStatus.Done;
    }

    internal bool TryGetFirst(ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value) => _headers.TryGetFirst(name, out value);
}
