using System.Collections.Concurrent;
using System.Text;

namespace WsBroker.Broker.Destinations;

/// <summary>
/// Parses destinations once: a stream of frames to known destinations finds the parsed, classified
/// <see cref="Destination"/> by its UTF-8 bytes without allocating. <paramref name="classify"/> (the access policy's) runs
/// once per distinct destination. Bounded: past <see cref="MaxEntries"/> the cache starts again.
/// </summary>
public sealed class DestinationCache(Func<Destination, object?> classify)
{
    private const int MaxEntries = 100_000;
    private readonly ConcurrentDictionary<string, Destination> _parsed = new(StringComparer.Ordinal);
    private int _count;                                            // about: ConcurrentDictionary.Count takes every lock
    private ConcurrentDictionary<string, Destination>.AlternateLookup<ReadOnlySpan<char>> BySpan => _parsed.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>The destination named by <paramref name="utf8"/>, or null with the reason.</summary>
    public Destination? Get(ReadOnlySpan<byte> utf8, out DestinationError error)
    {
        error = DestinationError.None;
        if (utf8.Length > Destination.MaxLength * 3) return Parse(Encoding.UTF8.GetString(utf8), out error);
        Span<char> chars = stackalloc char[Destination.MaxLength * 3];
        var length = Encoding.UTF8.GetChars(utf8, chars);
        if (BySpan.TryGetValue(chars[..length], out var cached)) return cached;
        return Parse(new string(chars[..length]), out error);
    }

    /// <summary>The destination named by <paramref name="text"/>, or null with the reason.</summary>
    public Destination? Get(string text, out DestinationError error)
    {
        error = DestinationError.None;
        return _parsed.TryGetValue(text, out var cached) ? cached : Parse(text, out error);
    }

    private Destination? Parse(string text, out DestinationError error)
    {
        var destination = Destination.Parse(text, out error);
        if (destination is null) return null;                  // refused: the error path does not fill the cache
        destination.Classification = classify(destination);
        if (Volatile.Read(ref _count) >= MaxEntries)
        {
            _parsed.Clear();
            Volatile.Write(ref _count, 0);
        }
        if (_parsed.TryAdd(text, destination))
        {
            Interlocked.Increment(ref _count);
            return destination;
        }
        return _parsed.TryGetValue(text, out var other) ? other : destination;
    }
}
