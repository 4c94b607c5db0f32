using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace WsBroker.Broker.Transport;

/// <summary>
/// Validates the UTF-8 of a text message (RFC 6455 §8.1) as its bytes arrive: a code point may be split between frames
/// and between reads, so up to three bytes of an unfinished one are carried to the next chunk. An invalid prefix fails at
/// once (a lone continuation byte, an overlong or surrogate lead), not only at the message's end.
/// A struct kept in a field of its transport: use it in place.
/// </summary>
internal struct Utf8Validator
{
    private uint _pending;                                        // bytes of an unfinished code point, first in the low byte
    private int _pendingCount;

    /// <summary>True when no code point is unfinished (a message may end here).</summary>
    public readonly bool IsComplete => _pendingCount == 0;

    public void Reset() => _pendingCount = 0;

    /// <summary>Takes the next bytes; false when they make the text invalid.</summary>
    public bool Append(ReadOnlySpan<byte> chunk)
    {
        if (_pendingCount > 0)
        {
            Span<byte> joined = stackalloc byte[4];
            for (var k = 0; k < _pendingCount; k++) joined[k] = (byte)(_pending >> (8 * k));
            var take = Math.Min(4 - _pendingCount, chunk.Length);
            chunk[..take].CopyTo(joined[_pendingCount..]);
            var status = Rune.DecodeFromUtf8(joined[..(_pendingCount + take)], out _, out var used);
            if (status == OperationStatus.InvalidData) return false;
            if (status == OperationStatus.NeedMoreData)
            {
                Keep(joined[..(_pendingCount + take)]);                    // take == chunk.Length: all of it absorbed
                return true;
            }
            chunk = chunk[(used - _pendingCount)..];
            _pendingCount = 0;
        }
        var tail = UnfinishedTail(chunk);
        if (!Utf8.IsValid(chunk[..^tail])) return false;
        if (tail == 0) return true;
        if (Rune.DecodeFromUtf8(chunk[^tail..], out _, out _) != OperationStatus.NeedMoreData) return false;
        Keep(chunk[^tail..]);
        return true;
    }

    private void Keep(ReadOnlySpan<byte> bytes)
    {
        _pending = 0;
        for (var k = 0; k < bytes.Length; k++) _pending |= (uint)bytes[k] << (8 * k);
        _pendingCount = bytes.Length;
    }

    // How many bytes at the end start a code point that the chunk does not finish (0-3).
    private static int UnfinishedTail(ReadOnlySpan<byte> chunk)
    {
        for (var back = 1; back <= Math.Min(3, chunk.Length); back++)
        {
            var b = chunk[^back];
            if ((b & 0xC0) == 0x80) continue;                         // a continuation byte: the lead is further back
            var needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            return needed > back ? back : 0;
        }
        return 0;                                                     // only continuation bytes: Utf8.IsValid judges them
    }
}
