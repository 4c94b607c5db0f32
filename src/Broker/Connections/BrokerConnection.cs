using System.Buffers;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Threading.Channels;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Connections;

/// <summary>
/// One WebSocket connection: a bounded outbox drained by one writer loop (STYLE.md "Write side"), and a read loop the
/// subclass provides (STOMP frames, or raw topic-URL messages). Publishers only ever call <see cref="TryDeliver"/>, which
/// never blocks: a connection that cannot keep up is closed as a slow consumer.
/// </summary>
public abstract partial class BrokerConnection : IMessageSink, IBrokerSession
{
    private const int MaxFramesPerFlush = 256;
    private const int MaxBytesPerFlush = 256 * 1024;
    private readonly Channel<Outbound> _outbox;
    private readonly CancellationTokenSource _abort = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _startedTicks = Stopwatch.GetTimestamp();
    private long _queuedBytes;
    private int _closeRequested;
    private int _slow;
    private int _reason = -1;
    private long _lastReceivedMs;
    private long _lastSentMs;
    private long _framesOut;
    private Timer? _abortTimer;

    protected BrokerConnection(WebSocket socket, BrokerServices services, string sessionId)
    {
        Socket = socket;
        Services = services;
        SessionId = sessionId;
        _outbox = Channel.CreateBounded<Outbound>(new BoundedChannelOptions(services.Options.OutboundQueueFrames)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,                // TryWrite fails when full: the slow-consumer signal
        });
        _lastReceivedMs = _lastSentMs = Environment.TickCount64;
    }

    protected WebSocket Socket { get; }
    protected BrokerServices Services { get; }
    public string SessionId { get; }
    public BrokerPrincipal? Principal { get; protected set; }
    public abstract string Protocol { get; }
    public Task Completion => _completion.Task;
    protected CancellationToken Aborted => _abort.Token;
    protected bool IsClosing => Volatile.Read(ref _closeRequested) != 0 || _abort.IsCancellationRequested;
    public DisconnectReason? Reason => _reason < 0 ? null : (DisconnectReason)_reason;
    public long FramesIn { get; protected set; }
    public long FramesOut => Interlocked.Read(ref _framesOut);
    public int QueuedBytes => (int)Interlocked.Read(ref _queuedBytes);

    /// <summary>Negotiated heart-beat: send something every <see cref="HeartBeatSendMs"/>, expect something every
    /// <see cref="HeartBeatReceiveMs"/> (0 = off).</summary>
    public int HeartBeatSendMs { get; protected set; }
    public int HeartBeatReceiveMs { get; protected set; }

    /// <summary>A handler of this connection's frame is running: its silence is not the client's fault.</summary>
    protected int HandlersRunning;

    public bool IsAuthenticated => Principal is not null;
    internal long StartedAtMs { get; } = Environment.TickCount64;

    /// <summary>Runs the connection to its end.</summary>
    public async Task RunAsync()
    {
        Services.Sessions.Add(this);
        Services.Metrics.ConnectionOpened();
        var writer = WriteLoopAsync();
        try
        {
            await ReadLoopAsync();
            SetReason(DisconnectReason.ClientClosed);
        }
        catch (OperationCanceledException) when (_abort.IsCancellationRequested) { }
        catch (WebSocketException) { SetReason(DisconnectReason.TransportError); }
        catch (IOException) { SetReason(DisconnectReason.TransportError); }
        catch (Exception ex)
        {
            SetReason(DisconnectReason.TransportError);
            Log.ConnectionFailed(Services.Logger, ex, SessionId);
        }
        finally
        {
            // Let the writer flush what is queued (e.g. an ERROR), then close; abort when it takes too long.
            _outbox.Writer.TryComplete();
            if (await Task.WhenAny(writer, Task.Delay(Math.Max(1000, Services.Options.ShutdownTimeoutMs))) != writer) Abort(DisconnectReason.SlowConsumer);
            await writer.ConfigureAwait(false);
            OnClosed();
            Services.Sessions.Remove(this);
            _abortTimer?.Dispose();
            Services.Metrics.Disconnected(Reason ?? DisconnectReason.ClientClosed);
            var elapsed = Stopwatch.GetElapsedTime(_startedTicks);
            Log.ConnectionEnded(Services.Logger, SessionId, Protocol, Principal?.UserId ?? "-", Reason ?? DisconnectReason.ClientClosed,
                (long)elapsed.TotalMilliseconds, FramesIn, FramesOut);
            _abort.Dispose();
            _completion.TrySetResult();
        }
    }

    protected abstract Task ReadLoopAsync();

    /// <summary>Releases subscriptions and other per-session state.</summary>
    protected abstract void OnClosed();

    /// <summary>Writes one delivery in this connection's wire format; returns true when it must go in a binary message.</summary>
    protected abstract bool EncodeDelivery(Subscription subscription, SharedMessage message, IBufferWriter<byte> output);

    /// <summary>True when every delivery or frame must be its own WebSocket message (JSON documents cannot be concatenated).</summary>
    protected virtual bool OneDeliveryPerMessage => false;

    /// <summary>Marks received bytes for the heart-beat scanner.</summary>
    protected void Touch() => Volatile.Write(ref _lastReceivedMs, Environment.TickCount64);

    // ---- outbox ---------------------------------------------------------------------------------------------------

    public bool TryDeliver(Subscription subscription, SharedMessage message)
    {
        if (IsClosing) return false;
        if (!subscription.TrackDelivery(message.Id, Services.Options.MaxUnacked))
        {
            SlowConsumer();
            return false;
        }
        return TryEnqueue(new Outbound(OutboundKind.Delivery, subscription, message, null, message.Size));
    }

    /// <summary>Queues a whole pre-serialised frame.</summary>
    protected bool TryEnqueueFrame(byte[] frame, bool binary = false) =>
        !IsClosing && TryEnqueue(new Outbound(binary ? OutboundKind.BinaryFrame : OutboundKind.Frame, null, null, frame, frame.Length));

    private bool TryEnqueue(Outbound item)
    {
        if (Interlocked.Add(ref _queuedBytes, item.Size) > Services.Options.OutboundQueueBytes || !_outbox.Writer.TryWrite(item))
        {
            Interlocked.Add(ref _queuedBytes, -item.Size);
            SlowConsumer();
            return false;
        }
        return true;
    }

    /// <summary>A heart-beat is due when nothing was sent for the negotiated interval (called by the scanner).</summary>
    internal void SendHeartBeatIfDue(long nowMs)
    {
        if (HeartBeatSendMs > 0 && nowMs - Volatile.Read(ref _lastSentMs) >= HeartBeatSendMs && !IsClosing)
        {
            Volatile.Write(ref _lastSentMs, nowMs);              // one beat per interval even if the writer is slow
            _outbox.Writer.TryWrite(new Outbound(OutboundKind.HeartBeat, null, null, null, 1));
        }
    }

    /// <summary>Closes a connection that has been silent for more than twice the agreed interval (called by the scanner).</summary>
    internal void CheckTimeouts(long nowMs)
    {
        if (IsClosing || Volatile.Read(ref HandlersRunning) > 0) return;
        var silent = nowMs - Volatile.Read(ref _lastReceivedMs);
        if (!IsAuthenticated && nowMs - StartedAtMs > Services.Options.ConnectTimeoutMs)
            CloseWithError("no CONNECT frame in time", null, DisconnectReason.ConnectTimeout);
        else if (HeartBeatReceiveMs > 0 && silent > 2L * HeartBeatReceiveMs)
            CloseWithError("heart-beat timeout", null, DisconnectReason.HeartbeatTimeout);
    }

    // ---- closing ----------------------------------------------------------------------------------------------------

    /// <summary>Sends ERROR (after what is already queued), then closes. The first reason given is the one logged.</summary>
    public void CloseWithError(string message, string? receiptId, DisconnectReason reason, string? detail = null)
    {
        SetReason(reason);
        if (Interlocked.Exchange(ref _closeRequested, 1) != 0) return;
        var error = BuildError(message, receiptId, detail);
        if (error is null || !_outbox.Writer.TryWrite(new Outbound(OutboundKind.Frame, null, null, error, error.Length))
            || !_outbox.Writer.TryWrite(new Outbound(OutboundKind.Close, null, null, null, 0)))
        {
            Abort(reason);
            return;
        }
        _outbox.Writer.TryComplete();
        ArmAbortTimer();
    }

    /// <summary>Closes after the queued frames are written (DISCONNECT).</summary>
    protected void CloseAfterFlush(DisconnectReason reason)
    {
        SetReason(reason);
        if (Interlocked.Exchange(ref _closeRequested, 1) != 0) return;
        if (!_outbox.Writer.TryWrite(new Outbound(OutboundKind.Close, null, null, null, 0))) Abort(reason);
        _outbox.Writer.TryComplete();
        ArmAbortTimer();
    }

    /// <summary>Drops the connection now.</summary>
    public void Abort(DisconnectReason reason)
    {
        SetReason(reason);
        Volatile.Write(ref _closeRequested, 1);
        _outbox.Writer.TryComplete();
        try
        {
            _abort.Cancel();
        }
        catch (ObjectDisposedException) { }
        Socket.Abort();
    }

    private void SlowConsumer()
    {
        if (Interlocked.Exchange(ref _slow, 1) != 0) return;
        SetReason(DisconnectReason.SlowConsumer);
        Services.Metrics.SlowConsumer();
        Volatile.Write(ref _closeRequested, 1);
        _outbox.Writer.TryComplete();                        // the writer discards the backlog and sends ERROR (best effort)
        ArmAbortTimer();
    }

    private void ArmAbortTimer()
    {
        // A client that does not read never lets the close handshake finish: drop it after a grace period.
        var timer = new Timer(static state => ((BrokerConnection)state!).Abort(DisconnectReason.SlowConsumer), this,
            Math.Max(1000, Services.Options.ShutdownTimeoutMs), Timeout.Infinite);
        if (Interlocked.CompareExchange(ref _abortTimer, timer, null) is not null) timer.Dispose();
    }

    private void SetReason(DisconnectReason reason) => Interlocked.CompareExchange(ref _reason, (int)reason, -1);

    /// <summary>The ERROR frame for this connection's wire format (null = none, e.g. raw URLs close with a reason).</summary>
    protected abstract byte[]? BuildError(string message, string? receiptId, string? detail);

    // ---- the writer loop ----------------------------------------------------------------------------------------------

    private async Task WriteLoopAsync()
    {
        await Task.Yield();
        using var buffer = new PooledBufferWriter();
        var reader = _outbox.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_abort.Token))
            {
                if (Volatile.Read(ref _slow) != 0) break;
                var close = false;
                var binary = false;
                var frames = 0;
                var others = 0;
                var maxFrames = OneDeliveryPerMessage ? 1 : MaxFramesPerFlush;
                while (frames < maxFrames && buffer.WrittenCount < MaxBytesPerFlush && reader.TryRead(out var item))
                {
                    if (Encode(item, buffer, ref binary, ref frames, ref others)) { close = true; break; }
                }
                if (buffer.WrittenCount > 0)
                {
                    await Socket.SendAsync(buffer.WrittenMemory, binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text, true, _abort.Token);
                    Volatile.Write(ref _lastSentMs, Environment.TickCount64);
                    // Counted once sent (MESSAGE once per flush; the rare others as they are encoded).
                    Services.Metrics.FramesSent(frames, buffer.WrittenCount, messages: frames - others);
                    Interlocked.Add(ref _framesOut, frames);
                }
                buffer.Reset();                                   // back to the pool: an idle connection holds no buffer
                if (close) break;
            }
            if (Volatile.Read(ref _slow) != 0)
            {
                var error = BuildError("slow consumer", null, "the client did not read its messages fast enough");
                if (error is not null)
                {
                    await Socket.SendAsync(error, WebSocketMessageType.Text, true, _abort.Token);
                    Services.Metrics.FramesSent(1, error.Length, messages: 0);
                    Services.Metrics.FrameSent(StompCommand.Error);
                }
            }
            await CloseSocketAsync();
        }
        catch (OperationCanceledException) { }
        catch (WebSocketException) { }
        catch (ObjectDisposedException) { }
        catch (IOException) { }
    }

    // Writes one outbox item; true for the Close marker.
    private bool Encode(in Outbound item, IBufferWriter<byte> buffer, ref bool binary, ref int frames, ref int others)
    {
        Interlocked.Add(ref _queuedBytes, -item.Size);
        switch (item.Kind)
        {
            case OutboundKind.Delivery:
                binary |= EncodeDelivery(item.Subscription!, item.Message!, buffer);
                frames++;
                return false;
            case OutboundKind.Frame or OutboundKind.BinaryFrame:
                StompFrameWriter.WriteRaw(buffer, item.Bytes);
                binary |= item.Kind == OutboundKind.BinaryFrame;
                frames++;
                if (CommandOf(item.Bytes!) is var command and not StompCommand.Message)
                {
                    Services.Metrics.FrameSent(command);
                    others++;
                }
                return false;
            case OutboundKind.HeartBeat:
                if (frames == 0 && Protocol == "stomp") StompFrameWriter.WriteHeartBeat(buffer);
                return false;
            default:
                return true;
        }
    }

    /// <summary>The command of a pre-serialised frame, for the frames-out metric (a raw URL's JSON receipt or error counts
    /// as RECEIPT or ERROR). Deliveries are not looked at: they are MESSAGE frames.</summary>
    private static StompCommand CommandOf(byte[] frame)
    {
        if (frame.Length > 0 && frame[0] == (byte)'{') return frame.AsSpan().StartsWith("{\"receipt\""u8) ? StompCommand.Receipt : StompCommand.Error;
        var end = frame.AsSpan().IndexOf((byte)'\n');
        return end > 0 && StompCommands.TryParse(frame.AsSpan(0, end), out var command) ? command : StompCommand.Message;
    }

    /// <summary>Benchmarks: does what the writer loop does with everything queued, minus the socket.</summary>
    internal int DrainOutbox(IBufferWriter<byte> output)
    {
        var binary = false;
        var frames = 0;
        var others = 0;
        while (_outbox.Reader.TryRead(out var item)) Encode(item, output, ref binary, ref frames, ref others);
        return frames;
    }

    private async Task CloseSocketAsync()
    {
        if (Socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return;
        var status = Reason switch
        {
            DisconnectReason.ProtocolError or DisconnectReason.AuthenticationFailed => WebSocketCloseStatus.PolicyViolation,
            DisconnectReason.ServerShutdown => WebSocketCloseStatus.EndpointUnavailable,
            DisconnectReason.SlowConsumer => WebSocketCloseStatus.PolicyViolation,
            _ => WebSocketCloseStatus.NormalClosure,
        };
        await Socket.CloseOutputAsync(status, Reason?.ToString(), _abort.Token);
    }

    private enum OutboundKind : byte { Delivery, Frame, BinaryFrame, HeartBeat, Close }

    private readonly record struct Outbound(OutboundKind Kind, Subscription? Subscription, SharedMessage? Message, byte[]? Bytes, int Size);

    // ---- IBrokerSession ----------------------------------------------------------------------------------------------

    public abstract void SendReceipt(string receiptId);

    public abstract void SendUserError(string message, string? receiptId);

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, Level = LogLevel.Information,
            Message = "connection {SessionId} ({Protocol}) of {User} ended: {Reason} after {DurationMs} ms, {FramesIn} frames in, {FramesOut} frames out")]
        public static partial void ConnectionEnded(ILogger logger, string sessionId, string protocol, string user, DisconnectReason reason,
            long durationMs, long framesIn, long framesOut);

        [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "connection {SessionId} failed")]
        public static partial void ConnectionFailed(ILogger logger, Exception exception, string sessionId);
    }
}
