using System.Buffers;

namespace WsBroker.Protocol.Tests;

/// <summary>Builds <see cref="ReadOnlySequence{T}"/> inputs with chosen segment boundaries, so tests can feed the parser
/// the same bytes whole, split in two, or one byte per segment.</summary>
internal static class TestSequence
{
    public static ReadOnlySequence<byte> Whole(byte[] bytes) => new(bytes);

    /// <summary>Two segments, the second starting at <paramref name="at"/> (either may be empty).</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, int at) => FromChunks([bytes[..at], bytes[at..]]);

    /// <summary>One segment per byte.</summary>
    public static ReadOnlySequence<byte> PerByte(byte[] bytes) => Chunked(bytes, 1);

    /// <summary>Segments of <paramref name="size"/> bytes (the last may be shorter).</summary>
    public static ReadOnlySequence<byte> Chunked(byte[] bytes, int size)
    {
        var chunks = new List<byte[]>();
        for (var i = 0; i < bytes.Length; i += size) chunks.Add(bytes[i..Math.Min(bytes.Length, i + size)]);
        return FromChunks(chunks);
    }

    /// <summary>One segment per chunk, each chunk copied into its own array so no segment can read past its end.</summary>
    public static ReadOnlySequence<byte> FromChunks(IReadOnlyList<byte[]> chunks)
    {
        if (chunks.Count == 0) return ReadOnlySequence<byte>.Empty;
        var first = new Segment(chunks[0].ToArray(), 0);
        var last = first;
        for (var i = 1; i < chunks.Count; i++) last = last.Append(chunks[i].ToArray());
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
