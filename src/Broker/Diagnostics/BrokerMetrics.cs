using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Diagnostics;

/// <summary>Process-wide counters (read by /metrics). Lock-free increments.</summary>
public sealed class BrokerMetrics
{
    private long _connectionsOpened;
    private long _framesOut;
    private long _bytesIn;
    private long _bytesOut;
    private long _deliveries;
    private long _slowConsumers;
    private long _protocolErrors;
    private long _authFailures;
    private long _rejections;
    private readonly long[] _framesInByCommand = new long[16];
    private readonly long[] _framesOutByKind = new long[16];
    private readonly long[] _commitBuckets = new long[s_commitBoundsMs.Length + 1];
    private long _commitCount;
    private long _commitSumMicros;
    private readonly long[] _disconnects = new long[16];

    /// <summary>Upper bounds (ms) of the commit-latency histogram buckets.</summary>
    internal static readonly double[] s_commitBoundsMs = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

    public long FramesInFor(WsBroker.Protocol.StompCommand command) => Volatile.Read(ref _framesInByCommand[(int)command]);
    public void FrameReceived(WsBroker.Protocol.StompCommand command) => Interlocked.Increment(ref _framesInByCommand[(int)command]);
    public void Disconnected(DisconnectReason reason) => Interlocked.Increment(ref _disconnects[(int)reason]);
    public long DisconnectsFor(DisconnectReason reason) => Volatile.Read(ref _disconnects[(int)reason]);

    /// <summary>Records one group commit of <paramref name="messages"/> that took <paramref name="elapsed"/>.</summary>
    public void CommitObserved(int messages, TimeSpan elapsed)
    {
        var ms = elapsed.TotalMilliseconds;
        var bucket = Array.FindIndex(s_commitBoundsMs, b => ms <= b);
        Interlocked.Increment(ref _commitBuckets[bucket < 0 ? s_commitBoundsMs.Length : bucket]);
        Interlocked.Increment(ref _commitCount);
        Interlocked.Add(ref _commitSumMicros, (long)(ms * 1000));
    }

    /// <summary>Cumulative commit-latency buckets (Prometheus histogram semantics), count and sum in seconds.</summary>
    public (long[] Cumulative, long Count, double SumSeconds) CommitHistogram()
    {
        var cumulative = new long[_commitBuckets.Length];
        long running = 0;
        for (var i = 0; i < cumulative.Length; i++) cumulative[i] = running += Volatile.Read(ref _commitBuckets[i]);
        return (cumulative, Volatile.Read(ref _commitCount), Volatile.Read(ref _commitSumMicros) / 1_000_000.0);
    }

    public long ConnectionsOpened => Volatile.Read(ref _connectionsOpened);
    public long FramesOut => Volatile.Read(ref _framesOut);
    public long BytesIn => Volatile.Read(ref _bytesIn);
    public long BytesOut => Volatile.Read(ref _bytesOut);
    public long Deliveries => Volatile.Read(ref _deliveries);
    public long SlowConsumerDisconnects => Volatile.Read(ref _slowConsumers);
    public long ProtocolErrors => Volatile.Read(ref _protocolErrors);
    public long AuthenticationFailures => Volatile.Read(ref _authFailures);
    public long Rejections => Volatile.Read(ref _rejections);

    public void ConnectionOpened() => Interlocked.Increment(ref _connectionsOpened);
    public void BytesReceived(int bytes) => Interlocked.Add(ref _bytesIn, bytes);
    public void FramesSent(int frames, int bytes, int messages)
    {
        Interlocked.Add(ref _framesOut, frames);
        Interlocked.Add(ref _bytesOut, bytes);
        if (messages > 0) Interlocked.Add(ref _framesOutByKind[(int)WsBroker.Protocol.StompCommand.Message], messages);
    }

    /// <summary>A frame other than MESSAGE was sent (MESSAGE frames, by far the most, are counted per flush in <see cref="FramesSent"/>).</summary>
    public void FrameSent(WsBroker.Protocol.StompCommand command) => Interlocked.Increment(ref _framesOutByKind[(int)command]);

    /// <summary>Frames sent with <paramref name="command"/>: each a monotonic counter of its own.</summary>
    public long FramesOutFor(WsBroker.Protocol.StompCommand command) => Volatile.Read(ref _framesOutByKind[(int)command]);
    public void Delivered(int count) { if (count > 0) Interlocked.Add(ref _deliveries, count); }
    public void SlowConsumer() => Interlocked.Increment(ref _slowConsumers);
    public void ProtocolError() => Interlocked.Increment(ref _protocolErrors);
    public void AuthenticationFailure() => Interlocked.Increment(ref _authFailures);
    public void Rejection() => Interlocked.Increment(ref _rejections);
}
