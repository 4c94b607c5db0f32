namespace WsBroker.Broker.Transport;

/// <summary>Pings of a <see cref="PipeWebSocketTransport"/> whose sessions have no heart-beats of their own (raw topic
/// URLs), as ASP.NET Core's keep-alive does: a ping every interval, and a client that has sent nothing (not even a pong) for
/// the timeout is dropped (a half-open connection). One timer per such connection.</summary>
internal sealed class WebSocketKeepAlive : IDisposable
{
    private readonly PipeWebSocketTransport _transport;
    private readonly long _timeoutMs;                              // 0: never dropped
    private readonly Timer _timer;
    private long _lastReceivedMs = Environment.TickCount64;

    public WebSocketKeepAlive(PipeWebSocketTransport transport, TimeSpan interval, TimeSpan timeout)
    {
        _transport = transport;
        _timeoutMs = timeout == Timeout.InfiniteTimeSpan ? 0 : (long)timeout.TotalMilliseconds;
        _timer = new Timer(static state => ((WebSocketKeepAlive)state!).Tick(), this, interval, interval);
    }

    /// <summary>The client sent bytes.</summary>
    public void Received() => Volatile.Write(ref _lastReceivedMs, Environment.TickCount64);

    public void Dispose() => _timer.Dispose();

    private void Tick()
    {
        if (_timeoutMs > 0 && Environment.TickCount64 - Volatile.Read(ref _lastReceivedMs) > _timeoutMs)
        {
            _transport.Abort();
            return;
        }
        if (_transport.TryEnterWrite()) _ = PingAsync();              // else a send is under way: no ping needed now
    }

    private async Task PingAsync()
    {
        try
        {
            if (_transport.IsClosing) return;
            WebSocketFrameWriter.Write(_transport.Output, WebSocketOpcode.Ping, []);
            await _transport.FlushAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or System.Net.WebSockets.WebSocketException or InvalidOperationException) { }
        finally
        {
            _transport.ExitWrite();
        }
    }
}
