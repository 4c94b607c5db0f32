using System.Buffers;
using System.Text.Unicode;

namespace WsBroker.Protocol;

// The header lines of the frame a StompFrameParser is reading, unescaped: one text buffer and one slot per entry (name
// and value as offsets into it), both rented from the shared pools on the first header and given back by Release, so
// that a parser between frames holds no array. A mutable struct held in one field of its parser: it adds no object to a
// connection.
internal struct StompHeaderBlock
{
    private const byte Lf = (byte)'\n';
    private const byte Cr = (byte)'\r';
    private const byte Colon = (byte)':';
    private const byte Backslash = (byte)'\\';
    private const int FirstTextLength = 256;
    private const int FirstSlotCount = 8;

    private byte[]? _text;
    private int _textLength;
    private HeaderSlot[]? _slots;
    private int _count;

    // Header entries read so far, repeated names included.
    public readonly int Count => _count;

    public readonly ReadOnlySpan<byte> GetName(int index) => _text.AsSpan(_slots![index].NameStart, _slots[index].NameLength);
    public readonly ReadOnlySpan<byte> GetValue(int index) => _text.AsSpan(_slots![index].ValueStart, _slots[index].ValueLength);

    // The value of the first entry with this name.
    public readonly bool TryGetFirst(ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        for (var i = 0; i < _count; i++)
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

    // Forgets the entries and keeps the arrays (the next frame of a busy connection reuses them).
    public void Clear()
    {
        _count = 0;
        _textLength = 0;
    }

    // Forgets the entries and gives the arrays back to the pools.
    public void Release()
    {
        Clear();
        Return(ref _text);
        Return(ref _slots);
    }

    // Adds one header line (its EOL removed), unescaped when escaping (STOMP 1.1 and later; crEscape for 1.2's \r).
    public StompParseError Add(ReadOnlySpan<byte> line, bool escaping, bool crEscape)
    {
        var colon = line.IndexOf(Colon);
        if (colon <= 0) return StompParseError.MalformedHeader;
        // STOMP 1.2: a CR in a header is sent as "\r"; a raw one (other than the CRLF line end, already removed) is invalid.
        if (crEscape && escaping && line.IndexOf(Cr) >= 0) return StompParseError.MalformedHeader;
        if (!Utf8.IsValid(line)) return StompParseError.InvalidUtf8;
        var textLength = _text?.Length ?? 0;
        if (textLength < _textLength + line.Length) Grow(ref _text, _textLength, Math.Max(FirstTextLength, Math.Max(textLength * 2, _textLength + line.Length)));
        if (_count == (_slots?.Length ?? 0)) Grow(ref _slots, _count, Math.Max(FirstSlotCount, _count * 2));

        ref var slot = ref _slots![_count];
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
        _count++;
        return StompParseError.None;
    }

    // A scratch array from the pool at least `length` long, with the `used` items of the old one (which goes back).
    private static void Grow<T>(ref T[]? array, int used, int length)
    {
        var grown = ArrayPool<T>.Shared.Rent(length);
        array.AsSpan(0, used).CopyTo(grown);
        Return(ref array);
        array = grown;
    }

    private static void Return<T>(ref T[]? array)
    {
        if (array is not null) ArrayPool<T>.Shared.Return(array);
        array = null;
    }

    // Copies the source, undoing STOMP escapes when asked; -1 for an undefined escape.
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

    private struct HeaderSlot
    {
        public int NameStart;
        public int NameLength;
        public int ValueStart;
        public int ValueLength;
    }
}
