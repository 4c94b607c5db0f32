using System.Collections.Concurrent;
using System.IO.Pipelines;

namespace WsBroker.Broker.Transport;

/// <summary>Reusable pipes for the read loops: rented while a connection has bytes in flight, returned (reset, with its
/// memory released) when the connection goes quiet. Bounded, so a burst does not pin memory forever.</summary>
internal static class PipePool
{
    private const int MaxPooled = 1024;
    // No pause threshold: the read loop is the pipe's only reader and writer, and the parser bounds what stays buffered.
    private static readonly PipeOptions s_options = new(pauseWriterThreshold: 0, resumeWriterThreshold: 0, minimumSegmentSize: 2048, useSynchronizationContext: false);
    private static readonly ConcurrentQueue<Pipe> s_pipes = new();
    private static int s_count;

    public static Pipe Rent()
    {
        if (s_pipes.TryDequeue(out var pipe))
        {
            Interlocked.Decrement(ref s_count);
            return pipe;
        }
        return new Pipe(s_options);
    }

    public static void Return(Pipe pipe)
    {
        // Completing both ends releases the segments; Reset makes the pipe usable again.
        pipe.Reader.Complete();
        pipe.Writer.Complete();
        pipe.Reset();
        if (Interlocked.Increment(ref s_count) <= MaxPooled) s_pipes.Enqueue(pipe);
        else Interlocked.Decrement(ref s_count);
    }
}
