using System.Buffers;
using System.Diagnostics;
using System.Net.WebSockets;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// The session core every protocol shares: it runs the <see cref="TransportPump"/> over its transport (one read loop that
/// hands the client's bytes to <see cref="ReceiveAsync"/>, one writer loop that drains the session's bounded
/// <see cref="Outbox"/>), queues what is to be sent, judges its timeouts and closes. Publishers only ever call
/// <see cref="TryDeliver"/>, which never blocks. Credit flow (docs/design.md §3): a delivery that leaves the outbox above its
/// high-water mark is charged to the publishing session's <see cref="PublisherCredit"/>, and that session's read loop
/// waits (<see cref="WaitForCreditAsync"/>) until the outbox is back under its low-water mark. A session is cut as a slow
/// consumer only when its writer makes no progress for <c>Broker:SlowConsumerMs</c> or its outbox reaches the hard cap.
/// Its parts: the <see cref="Outbox"/> (with the publishers waiting for its drain) and the <see cref="SessionClock"/> its
/// timeouts are judged by, and <see cref="SessionClose"/>, which decides how it ends, all structs in place;
/// <see cref="ReplayHandOff"/> resumes a subscription with <c>since</c>.
/// </summary>
public abstract partial class BrokerSession : IMessageSink, IBrokerSession
{
    private Outbox _outbox;                                        // a struct: used in place, never copied
    private SessionClock _clock;                                   // a struct too
    private readonly CancellationTokenSource _abort = new();
    private SessionCompletion _completion;                        // a struct too: no task unless someone waits for the end
    private SessionCompletion _writer;                            // the writer's end, likewise
    private SessionClose _close;                                  // how it ends: the first cause wins; a struct too
    private int _readingPaused;                                   // handlers awaiting or credit waits (CheckTimeouts waits)
    private int _stopping;
    private long _framesOut;
    private PublisherCredit? _credit;                             // what this session owes as a publisher (made by the read loop)

    protected BrokerSession(IConnectionTransport transport, BrokerServices services, string sessionId)
    {
        Transport = transport;
        Services = services;
        SessionId = sessionId;
        var options = services.Options;
        _outbox = new Outbox(options.OutboundQueueFrames, options.OutboundQueueBytes, options.OutboundQueueHardCapFrames, options.OutboundQueueHardCapBytes);
        _clock = new SessionClock(Environment.TickCount64);
    }

    protected internal IConnectionTransport Transport { get; }
    protected internal BrokerServices Services { get; }
    public string SessionId { get; }
    public BrokerPrincipal? Principal { get; private set; }
    public abstract string Protocol { get; }
    public Task Completion => _completion.Task;
    protected internal CancellationToken Aborted => _abort.Token;
    protected internal bool IsClosing => _close.IsRequested || _abort.IsCancellationRequested;
    public DisconnectReason? Reason => _close.Reason;
    public long FramesIn { get; protected set; }
    public long FramesOut => Interlocked.Read(ref _framesOut);

    /// <summary>Negotiated heart-beat: send something every <see cref="HeartBeatSendMs"/>, expect something every
    /// <see cref="HeartBeatReceiveMs"/> (0 = off).</summary>
    public int HeartBeatSendMs { get => _clock.HeartBeatSendMs; protected set => _clock.HeartBeatSendMs = value; }
    public int HeartBeatReceiveMs { get => _clock.HeartBeatReceiveMs; protected set => _clock.HeartBeatReceiveMs = value; }

    public bool IsAuthenticated => Principal is not null;
    internal long StartedAtMs => _clock.StartedAtMs;

    /// <summary>Where this session sits in its user's list in <see cref="SessionRegistry"/> (the registry's own, under its
    /// gate; -1 when not there).</summary>
    internal int UserSlot { get; set; } = -1;

    /// <summary>Where this session sits in <see cref="SessionRegistry"/>'s array of every open session (under its gate; -1
    /// when not there).</summary>
    internal int RegistrySlot { get; set; } = -1;

    /// <summary>The session's token expired without a refresh: nothing more is sent but the ERROR <c>token expired</c>.</summary>
    internal bool IsExpired => _clock.IsExpired;

    /// <summary>The outbox in place, for the pump (a struct: never copy it).</summary>
    internal ref Outbox Outbox => ref _outbox;

    /// <summary>The clock in place, for the pump (a struct: never copy it).</summary>
    internal ref SessionClock Clock => ref _clock;

    /// <summary>Runs the session to its end (<see cref="TransportPump.RunAsync"/>: the read loop is this task's own flow,
    /// so an idle session waits in one async frame, not in two).</summary>
    public Task RunAsync() => TransportPump.RunAsync(this);

    /// <summary>The pump starts the session: it is registered and counted.</summary>
    internal void Opened()
    {
        Services.Sessions.Add(this);
        Services.Metrics.ConnectionOpened();
    }

    /// <summary>The read loop ended with <paramref name="ex"/>: why the session ends (an abort's own cancellation says
    /// nothing new; anything unexpected is logged).</summary>
    internal void ReadFailed(Exception ex)
    {
        switch (ex)
        {
            case OperationCanceledException when _abort.IsCancellationRequested: break;
            case WebSocketException or IOException: _close.SetReason(DisconnectReason.TransportError); break;
            default:
                _close.SetReason(DisconnectReason.TransportError);
                Log.ConnectionFailed(Services.Logger, ex, SessionId);
                break;
        }
    }

    /// <summary>The read loop ended normally: the client closed.</summary>
    internal void ReadEnded() => _close.SetReason(DisconnectReason.ClientClosed);

    /// <summary>The writer failed with something unexpected: logged, and the connection dropped.</summary>
    internal void WriterFailed(Exception ex)
    {
        Log.ConnectionFailed(Services.Logger, ex, SessionId);
        Abort(DisconnectReason.TransportError);
    }

    /// <summary>The writer has ended (<see cref="TransportPump.StartWriter"/>): all sent, or the session cut.</summary>
    internal void WriterEnded() => _writer.Complete();

    /// <summary>After the read loop: lets the writer flush what is queued (e.g. an ERROR) and close, aborting when it takes
    /// too long, then releases the session, and last lets the transport finish (<see cref="IConnectionTransport.FinishAsync"/>).</summary>
    internal async Task EndAsync()
    {
        _close.Claim();                                           // a close that comes now does nothing (it would abort)
        _outbox.Complete();                                       // and the publishers waiting for its drain released
        _credit?.Close();
        var writer = _writer.Task;
        if (await Task.WhenAny(writer, Task.Delay(Math.Max(1000, Services.Options.ShutdownTimeoutMs))) != writer) Abort(DisconnectReason.SlowConsumer);
        await writer.ConfigureAwait(false);
        try
        {
            OnClosed();
        }
        catch (Exception ex)
        {
            // Whatever failed (a plug-in told its subscription ended), the session still leaves the registry and ends.
            Log.ReleaseFailed(Services.Logger, ex, SessionId);
        }
        Services.Sessions.ConnectionClosing();                    // until the transport has finished: a descriptor held
        try
        {
            Services.Sessions.Remove(this);
            _close.Ended();
            Services.Metrics.Disconnected(Reason ?? DisconnectReason.ClientClosed);
            Log.ConnectionEnded(Services.Logger, SessionId, Protocol, Principal?.UserId ?? "-", Reason ?? DisconnectReason.ClientClosed,
                Environment.TickCount64 - StartedAtMs, FramesIn, FramesOut);
            _abort.Dispose();
            _completion.Complete();
            await Transport.FinishAsync(TimeSpan.FromMilliseconds(Math.Min(1000, Services.Options.ShutdownTimeoutMs)));
        }
        finally
        {
            Services.Sessions.ConnectionClosed();
        }
        // The client's close reply may have been read on the socket event thread (InlineSocketCompletions): Kestrel's
        // teardown of the connection, which follows this, runs on the thread pool.
        if (InlineSocketCompletions.OnEventThread) await Task.Yield();
    }

    // ---- what the pump asks of the session ----------------------------------------------------------------------------

    /// <summary>Called before the first read (a raw topic URL subscribes here).</summary>
    protected internal virtual ValueTask StartAsync() => ValueTask.CompletedTask;

    /// <summary>Consumes what it can of <paramref name="buffer"/> and returns where the unconsumed rest starts. A frame
    /// handler that awaits makes this await: the read loop waits for it (inbound back-pressure for this client only).</summary>
    protected internal abstract ValueTask<SequencePosition> ReceiveAsync(ReadOnlySequence<byte> buffer);

    /// <summary>0: the client's messages are one byte stream (STOMP: frames may span messages, one message may carry
    /// several frames). Else each message is handed over whole, up to this many bytes (raw topic URLs: one message is one
    /// SEND); a larger one is handed over once it is past the limit, and the session refuses it.</summary>
    protected internal virtual int MessageLimit => 0;

    /// <summary>True when <paramref name="buffer"/> holds heart-beats only (nothing for a handler): the pump then notes them
    /// on the socket event thread that read them, without a hop to the thread pool (<c>InlineSocketCompletions</c>).</summary>
    protected internal virtual bool OnlyHeartBeats(in ReadOnlySequence<byte> buffer) => false;

    /// <summary>Releases subscriptions and other per-session state.</summary>
    protected abstract void OnClosed();

    /// <summary>Writes one delivery in this session's wire format; returns true when it must go in a binary message.</summary>
    protected internal abstract bool EncodeDelivery(Subscription subscription, SharedMessage message, bool replay, IBufferWriter<byte> output);

    /// <summary>Fences (<see cref="Subscription.Fence"/>) this session's subscriptions to destinations
    /// <paramref name="predicate"/> accepts; true when it has one (or is about to: a session still starting on such a
    /// destination).</summary>
    internal abstract bool Fence(Func<Destination, bool> predicate);

    /// <summary>True when every delivery or frame must be its own transport message (JSON documents cannot be concatenated).</summary>
    protected internal virtual bool OneDeliveryPerMessage => false;

    /// <summary>The read loop stops reading for the broker's sake (a handler awaits, or the session waits for credit).</summary>
    internal void PauseReading() => Interlocked.Increment(ref _readingPaused);

    internal void ResumeReading()
    {
        Interlocked.Decrement(ref _readingPaused);
        _clock.Received();
    }

    /// <summary>Tells the client its replay stopped at the source's maximum and where the rest starts (see
    /// <see cref="ReplayHandOff"/>).</summary>
    protected internal abstract void ReplayTruncated(Subscription subscription, long next);

    // ---- credit flow ------------------------------------------------------------------------------------------------

    /// <summary>As a publisher: completes when every subscriber this session queued into above its high-water mark has
    /// drained below its low-water mark or is closing. Allocates nothing when nothing is owed (the common case). The read
    /// loop calls it before each socket read; a session may call it between frames too.</summary>
    protected internal ValueTask WaitForCreditAsync() => _credit is { InDebt: true } ? PayCreditAsync() : ValueTask.CompletedTask;

    /// <summary>Opens the account this session's publishes are charged to (the read loop, once).</summary>
    internal PublisherCredit OpenCreditAccount() => _credit = new PublisherCredit();

    private async ValueTask PayCreditAsync()
    {
        // Paused by the broker: the client's heart-beats and half-sent frames are not read meanwhile, not its fault.
        PauseReading();
        var pausedAt = Environment.TickCount64;
        var started = Stopwatch.GetTimestamp();
        try
        {
            if (await _credit!.PayAsync(StallCheck, Aborted)) Services.Metrics.FlowControlPaused(Stopwatch.GetElapsedTime(started));
        }
        finally
        {
            ResumeReading();
            _clock.ExcusePartialFrame(pausedAt);                  // the read loop's own field
        }
    }

    // How often a paused publisher looks whether a creditor has stalled meanwhile.
    private TimeSpan StallCheck => TimeSpan.FromMilliseconds(Math.Clamp(Services.Options.FlowControlStallMs / 4, 5, 250));

    /// <summary>As a subscriber: completes once this outbox is at or under its low-water mark, or the session is closing.</summary>
    public Task WhenDrained()
    {
        if (IsClosing) return Task.CompletedTask;
        var drained = _outbox.WhenDrained();
        // The session may have closed between the check and the wait, its outbox releasing no waiter yet.
        if (IsClosing) _outbox.ReleaseDrained();
        return drained;
    }

    /// <summary>This session's socket send has made no progress for <c>Broker:FlowControlStallMs</c>: its client stopped
    /// reading, so it holds no publisher (they read on; its queue grows until the cut) until a send completes.</summary>
    public bool IsStalled => _clock.IsStalled(Services.Options.FlowControlStallMs);

    /// <summary>Since when a socket send has been pending, 0 when none (tests).</summary>
    internal long SendPendingSinceMsForTests => _clock.SendPendingSinceMs;

    /// <summary>Frames and deliveries waiting in the outbox (tests).</summary>
    internal int QueuedFramesForTests => _outbox.QueuedFrames;

    // ---- outbox ---------------------------------------------------------------------------------------------------

    public DeliveryOutcome TryDeliver(Subscription subscription, SharedMessage message, bool replay = false)
    {
        if (IsClosing) return DeliveryOutcome.Refused;
        switch (subscription.Admit(message, replay, Services.Options.MaxUnacked, Services.Options.OutboundQueueHardCapFrames))
        {
            case Admission.Wait:
                return DeliveryOutcome.Queued;                   // held by the subscription until ACKs open its window
            case Admission.Overflow:
                SlowConsumer();
                return DeliveryOutcome.Refused;
        }
        if (!TryEnqueue(Outbound.Delivery(subscription, message, replay))) return DeliveryOutcome.Refused;
        return _outbox.IsAboveHighWater && !IsStalled ? DeliveryOutcome.QueuedAboveHighWater : DeliveryOutcome.Queued;
    }

    /// <summary>Queues the messages an ACK let out of <paramref name="subscription"/>'s prefetch window.</summary>
    protected void ReleaseWaiting(Subscription subscription)
    {
        while (!IsClosing && subscription.TryRelease(out var message, out var replay))
            TryEnqueue(Outbound.Delivery(subscription, message, replay));
    }

    /// <summary>Queues a whole pre-serialised frame (<paramref name="command"/> is what the metrics count it as).</summary>
    protected bool TryEnqueueFrame(StompCommand command, byte[] frame, bool binary = false) =>
        !IsClosing && TryEnqueue(Outbound.Frame(command, frame, frame.Length, pooled: false, binary));

    /// <summary>Queues a frame written by <paramref name="write"/> into a pooled buffer: no allocation in steady state
    /// (receipts, user errors). <paramref name="state"/> is passed to <paramref name="write"/> so it need not capture.</summary>
    protected bool TryEnqueuePooled<TState>(StompCommand command, TState state, Action<IBufferWriter<byte>, TState> write)
        where TState : allows ref struct
    {
        if (IsClosing) return false;
        var scratch = PooledFrames.Scratch();
        write(scratch, state);
        var rented = ArrayPool<byte>.Shared.Rent(scratch.WrittenCount);
        scratch.WrittenSpan.CopyTo(rented);
        if (TryEnqueue(Outbound.Frame(command, rented, scratch.WrittenCount, pooled: true, binary: false))) return true;
        ArrayPool<byte>.Shared.Return(rented);
        return false;
    }

    private bool TryEnqueue(in Outbound item)
    {
        if (_outbox.TryWrite(item)) return true;
        // Refused by a completed outbox (the session is closing; the check passed just before): not the client's fault.
        if (!_outbox.IsCompleted) SlowConsumer();
        return false;
    }

    private static ReadOnlySpan<byte> HeartBeatBytes => "\n"u8;

    /// <summary>A heart-beat is due when nothing was sent for the negotiated interval, or will have been within
    /// <paramref name="earlyMs"/> (called by the scanner, with its tick: so that no beat is late).</summary>
    internal void SendHeartBeatIfDue(long nowMs, int earlyMs = 0)
    {
        if (IsClosing || !_clock.TakeHeartBeat(nowMs, earlyMs)) return;
        // Straight to the socket when nothing waits for the writer and the transport can (the scanner's pass sends
        // thousands so, with no writer loop woken for each); otherwise the writer sends it (or something else instead).
        if (Protocol == "stomp" && _outbox.IsEmpty && Transport.TrySendNow(HeartBeatBytes)) Services.Metrics.FramesSent(0, 1, messages: 0);
        else _outbox.TryWriteHeartBeat();
    }

    /// <summary>Cuts a session whose socket send has made no progress for <c>Broker:SlowConsumerMs</c>; stops one whose token
    /// expired; closes one that has been silent for more than twice the agreed interval, never sent CONNECT, or left a frame
    /// half-sent for longer than <c>Broker:PartialFrameTimeoutMs</c> (called by the scanner).</summary>
    internal void CheckTimeouts(long nowMs)
    {
        if (IsClosing) return;
        switch (_clock.Due(nowMs, Services.Options, IsAuthenticated, Volatile.Read(ref _readingPaused) > 0))
        {
            case SessionTimeout.NoSendProgress:
                // The client stopped reading: the pending send holds the writer, so no ERROR can follow it. Drop the socket
                // now (its publishers were released by SlowConsumer).
                SlowConsumer();
                Abort(DisconnectReason.SlowConsumer);
                break;
            case SessionTimeout.TokenExpired: ExpireIfDue(nowMs); break;
            case SessionTimeout.NoConnect: CloseWithError("no CONNECT frame in time", null, DisconnectReason.ConnectTimeout); break;
            case SessionTimeout.HeartBeat: CloseWithError("heart-beat timeout", null, DisconnectReason.HeartbeatTimeout); break;
            case SessionTimeout.PartialFrame: CloseWithError("frame not completed in time", null, DisconnectReason.ProtocolError); break;
        }
    }

    // ---- the token's lifetime (docs/design.md §3 "Long-lived sessions") -----------------------------------------------

    /// <summary>The session is <paramref name="principal"/>'s until its token expires (<c>exp</c> plus
    /// <c>Auth:ClockSkewSeconds</c>); a token refresh calls it again. False, and the session expires, when the current token
    /// had expired already: a refresh that comes too late does not revive it.</summary>
    protected bool Authenticate(BrokerPrincipal principal)
    {
        var now = Environment.TickCount64;
        if (!_clock.TryExtend(now, SessionClock.ExpiryOf(principal.ExpiresAt, Services.Jwt.ClockSkew))) return !ExpireIfDue(now);
        Principal = principal;
        return true;
    }

    /// <summary>True when the token has expired at <paramref name="nowMs"/> (or before): the first caller that finds it so
    /// (the scanner, the writer about to send, the read loop about to handle a frame) stops the session. Nothing is sent
    /// after that instant but the ERROR <c>token expired</c>: the writer discards what was queued, then closes (a raw topic URL
    /// with close code 4001). One comparison when the token is still valid.</summary>
    internal bool ExpireIfDue(long nowMs)
    {
        if (nowMs < _clock.ExpiresAtMs) return false;
        if (!_clock.TryExpire(nowMs)) return _clock.IsExpired;
        Services.Metrics.SessionExpired();
        DiscardAndClose(DisconnectReason.TokenExpired);
        return true;
    }

    // ---- closing ----------------------------------------------------------------------------------------------------

    /// <summary>The server is going away: stop taking frames, answer what is owed (bounded by <paramref name="timeout"/>),
    /// then ERROR <c>server shutting down</c> and close.</summary>
    public async Task ShutdownAsync(TimeSpan timeout)
    {
        Volatile.Write(ref _stopping, 1);
        try
        {
            await AnswersOwedAsync().WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException) { }
        CloseWithError("server shutting down", null, DisconnectReason.ServerShutdown);
    }

    /// <summary>Completes when every answer this session owes (receipts of stored messages awaiting their commit) is given.</summary>
    protected virtual Task AnswersOwedAsync() => Task.CompletedTask;

    /// <summary>The server is shutting down: frames that arrive now are not handled (their senders get no answer and
    /// resend elsewhere; nothing they sent is stored).</summary>
    protected bool IsStopping => Volatile.Read(ref _stopping) != 0;

    /// <summary>Sends ERROR (after what is already queued), then closes; nothing is queued after it. The first way the
    /// session ends wins: a close that comes after another (or after the read loop's end) does nothing.</summary>
    public void CloseWithError(string message, string? receiptId, DisconnectReason reason, string? detail = null)
    {
        if (!_close.TryClaim()) return;
        _close.SetReason(reason);                                 // the winner's (its close code goes with its ERROR)
        var error = BuildError(message, receiptId, detail);
        // ERROR and the close after it, past the queue's bound (a session at its cap is told too), and nothing after them.
        // Refused: the outbox was completed meanwhile by an end already under way (the read loop's, on the client's close or
        // a discard's cut, which sends its own last word), bounded by its own timers: that end goes on.
        _outbox.TryWriteLast(error is null ? null : Outbound.Frame(StompCommand.Error, error, error.Length, pooled: false, binary: false));
        StopReading();
    }

    /// <summary>Closes after the queued frames are written (DISCONNECT).</summary>
    protected void CloseAfterFlush(DisconnectReason reason)
    {
        if (!_close.TryClaim()) return;
        _close.SetReason(reason);
        _outbox.TryWriteLast(null);
        StopReading();
    }

    // After the claimer's last frames are in (or the outbox completed): the read loop is told to stop (its end completes the
    // outbox, which is why this comes only now), publishers that looked before are released, a read loop paused for credit
    // stops waiting, and the abort timer bounds the close.
    private void StopReading()
    {
        _close.Request();
        _outbox.ReleaseDrained();
        _credit?.Close();
        // A client that does not read never lets the close handshake finish: drop it after a grace period.
        _close.ArmAbortTimer(static state => ((BrokerSession)state!).Abort(DisconnectReason.SlowConsumer), this,
            Math.Max(1000, Services.Options.ShutdownTimeoutMs));
    }

    /// <summary>Drops the connection now.</summary>
    public void Abort(DisconnectReason reason)
    {
        _close.SetReason(reason);
        _close.Claim();
        try
        {
            _abort.Cancel();
        }
        catch (Exception ex) when (ex is ObjectDisposedException or AggregateException) { }   // a callback's failure: cut anyway
        _outbox.Complete();                                       // after the cancel: the writer it wakes sees the abort
        Transport.Abort();
    }

    private void SlowConsumer()
    {
        if (!_outbox.MarkSlow()) return;
        Services.Metrics.SlowConsumer();
        DiscardAndClose(DisconnectReason.SlowConsumer);
    }

    // The writer discards the backlog and sends the ERROR that says why (best effort); the publishers waiting for this
    // outbox are released (never hold one for a session being cut).
    private void DiscardAndClose(DisconnectReason reason)
    {
        _close.SetReason(reason);
        // Claimed already: whoever claimed completes the outbox (a close about to queue its ERROR would find it completed
        // and send nothing); the writer cuts the backlog either way.
        if (_close.TryClaim())
        {
            _close.Request();                                     // nothing to queue: the read loop may stop first
            _outbox.Complete();
        }
        StopReading();
    }

    /// <summary>The ERROR frame for this session's wire format (null = none).</summary>
    protected internal abstract byte[]? BuildError(string message, string? receiptId, string? detail);

    /// <summary>Counts frames the writer loop has sent.</summary>
    internal void CountFramesOut(int frames) => Interlocked.Add(ref _framesOut, frames);

    /// <summary>Tests and benchmarks: does what the writer loop does with everything queued, minus the transport.</summary>
    internal int DrainOutbox(IBufferWriter<byte> output) => TransportPump.Drain(this, output);

    // ---- IBrokerSession ----------------------------------------------------------------------------------------------

    public abstract void SendReceipt(string receiptId, long? messageId = null);

    public abstract void SendUserError(string message, string? receiptId);

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, Level = LogLevel.Information,
            Message = "connection {SessionId} ({Protocol}) of {User} ended: {Reason} after {DurationMs} ms, {FramesIn} frames in, {FramesOut} frames out")]
        public static partial void ConnectionEnded(ILogger logger, string sessionId, string protocol, string user, DisconnectReason reason,
            long durationMs, long framesIn, long framesOut);

        [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "connection {SessionId} failed")]
        public static partial void ConnectionFailed(ILogger logger, Exception exception, string sessionId);

        [LoggerMessage(EventId = 103, Level = LogLevel.Error, Message = "connection {SessionId}: releasing its subscriptions failed")]
        public static partial void ReleaseFailed(ILogger logger, Exception exception, string sessionId);
    }
}
