using System.Buffers;

namespace WsBroker.Protocol;

/// <summary>
/// A parsed frame as views into its parser's buffers and the input: valid until the parser parses again or the input
/// buffer is released. Copy what must outlive that (<see cref="ToFrame"/> copies everything).
/// </summary>
public readonly struct StompFrameView
{
    private readonly StompFrameParser _parser;

    internal StompFrameView(StompFrameParser parser) => _parser = parser;

    /// <summary>The frame's command; <see cref="StompCommand.None"/> unless the last parse returned Done.</summary>
    public StompCommand Command => _parser.Command;

    /// <summary>Header entries in wire order, repeated names included.</summary>
    public int HeaderCount => _parser.HeaderCount;

    /// <summary>The (unescaped) name of the entry at <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> GetHeaderName(int index) => (uint)index < (uint)HeaderCount ? _parser.GetName(index) : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>The (unescaped) value of the entry at <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> GetHeaderValue(int index) => (uint)index < (uint)HeaderCount ? _parser.GetValue(index) : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>
    /// The first value of a header (STOMP 1.2: repeated entries after the first are ignored), without allocating. Both
    /// <paramref name="name"/> and <paramref name="value"/> are unescaped UTF-8: <c>\n</c>, <c>\c</c>, <c>\\</c> (and in 1.2
    /// <c>\r</c>) already decoded, so the value is what the client meant and is escaped again only when written. A
    /// CONNECT frame, and any frame of a STOMP 1.0 session, is not unescaped: its values are the octets as sent. The span
    /// points into the parser's scratch buffer: valid until the next parse.
    /// </summary>
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
