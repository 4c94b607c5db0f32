namespace WsBroker.Broker.Transport;

/// <summary>Pings of a <see cref="PipeWebSocketTransport"/> whose sessions have no heart-beats of their own (raw topic
/// URLs), as ASP.NET Core's keep-alive does: a ping every interval, and a client that has sent nothing (not even a pong) for
/// the timeout is dropped (a half-open connection). It owns no timer: the broker's one heart-beat scanner calls
/// <see cref="Tick"/> (through <see cref="IConnectionTransport.KeepAlive"/>) for every session on each of its ticks, so a
/// ping or a drop comes up to one tick (at most 1 s) after it is due.</summary>
internal sealed class WebSocketKeepAlive(PipeWebSocketTransport transport, TimeSpan interval, TimeSpan timeout)
{
    private readonly long _intervalMs = (long)interval.TotalMilliseconds;
    private readonly long _timeoutMs = timeout == Timeout.InfiniteTimeSpan ? 0 : (long)timeout.TotalMilliseconds;   // 0: never dropped
    private long _lastReceivedMs = Environment.TickCount64;
    private long _lastPingMs = Environment.TickCount64;              // the scanner's thread only

    /// <summary>The client sent bytes.</summary>
    public void Received() => Volatile.Write(ref _lastReceivedMs, Environment.TickCount64);

    /// <summary>Drops the connection when the client has been silent past the timeout, else pings when an interval has
    /// passed since the last ping (skipped while a send is under way: the connection is busy anyway).</summary>
    public void Tick(long nowMs)
    {
        if (transport.IsClosing) return;
        if (_timeoutMs > 0 && nowMs - Volatile.Read(ref _lastReceivedMs) > _timeoutMs)
        {
            transport.Abort();
            return;
        }
        if (nowMs - _lastPingMs < _intervalMs) return;
        _lastPingMs = nowMs;
        transport.TrySendNow(WebSocketOpcode.Ping, []);
    }
}
