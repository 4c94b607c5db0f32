namespace WsBroker.Broker.Connections;

/// <summary>Process-wide counters (read by /metrics). Lock-free increments.</summary>
public sealed class BrokerMetrics
{
    private long _connectionsOpened;
    private long _framesIn;
    private long _framesOut;
    private long _bytesIn;
    private long _bytesOut;
    private long _deliveries;
    private long _slowConsumers;
    private long _protocolErrors;
    private long _authFailures;
    private long _rejections;

    public long ConnectionsOpened => Volatile.Read(ref _connectionsOpened);
    public long FramesIn => Volatile.Read(ref _framesIn);
    public long FramesOut => Volatile.Read(ref _framesOut);
    public long BytesIn => Volatile.Read(ref _bytesIn);
    public long BytesOut => Volatile.Read(ref _bytesOut);
    public long Deliveries => Volatile.Read(ref _deliveries);
    public long SlowConsumerDisconnects => Volatile.Read(ref _slowConsumers);
    public long ProtocolErrors => Volatile.Read(ref _protocolErrors);
    public long AuthenticationFailures => Volatile.Read(ref _authFailures);
    public long Rejections => Volatile.Read(ref _rejections);

    public void ConnectionOpened() => Interlocked.Increment(ref _connectionsOpened);
    public void FrameIn(int bytes) { Interlocked.Increment(ref _framesIn); Interlocked.Add(ref _bytesIn, bytes); }
    public void BytesReceived(int bytes) => Interlocked.Add(ref _bytesIn, bytes);
    public void Sent(int frames, int bytes) { Interlocked.Add(ref _framesOut, frames); Interlocked.Add(ref _bytesOut, bytes); }
    public void Delivered(int count) { if (count > 0) Interlocked.Add(ref _deliveries, count); }
    public void SlowConsumer() => Interlocked.Increment(ref _slowConsumers);
    public void ProtocolError() => Interlocked.Increment(ref _protocolErrors);
    public void AuthenticationFailure() => Interlocked.Increment(ref _authFailures);
    public void Rejection() => Interlocked.Increment(ref _rejections);
}
