using System.Collections.Concurrent;
using System.Text;

namespace WsBroker.Broker.Connections;

/// <summary>Interns destination strings by their UTF-8 bytes so a stream of SENDs to known destinations allocates none.</summary>
internal static class DestinationCache
{
    private const int MaxEntries = 100_000;
    private const int MaxLength = 512;
    private static readonly ConcurrentDictionary<string, string> s_strings = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> s_bySpan = s_strings.GetAlternateLookup<ReadOnlySpan<char>>();

    public static string Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > MaxLength) return Encoding.UTF8.GetString(utf8);
        Span<char> chars = stackalloc char[MaxLength];
        var length = Encoding.UTF8.GetChars(utf8, chars);
        if (s_bySpan.TryGetValue(chars[..length], out var cached)) return cached;
        var text = new string(chars[..length]);
        if (s_strings.Count >= MaxEntries) s_strings.Clear();
        return s_strings.GetOrAdd(text, text);
    }
}
