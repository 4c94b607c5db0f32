using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// How a session ends (docs/design.md §3 "WebSocket close codes"): it is closed once, and the first cause decides. Every
/// way out <see cref="TryClaim">claims</see>; the one that wins queues its last frames, and only then
/// <see cref="Request">asks the read loop to stop</see>, since the read loop's end completes the outbox, which would refuse
/// them. The first reason set is the one counted and logged, and whose close code goes out. The abort timer bounds a close
/// whose client never lets the handshake finish.
/// <para>A struct kept in a (non-readonly) field of its session, like <see cref="Outbox"/>: use it only through that field,
/// never through a copy.</para>
/// </summary>
internal struct SessionClose
{
    private const int Claimed = 1, Requested = 2;
    private static readonly Timer s_ended = new(static _ => { }, null, Timeout.Infinite, Timeout.Infinite);
    private int _state;
    private int _reason;                                          // the DisconnectReason plus one; 0 = none yet
    private Timer? _abortTimer;

    /// <summary>The read loop is to stop (the session is closing).</summary>
    public bool IsRequested => (Volatile.Read(ref _state) & Requested) != 0;

    /// <summary>The first way the session ends claims it; false for any later one.</summary>
    public bool TryClaim() => (Interlocked.Or(ref _state, Claimed) & Claimed) == 0;

    /// <summary>The read loop is to stop: the claimer's last frames are in (or the outbox completed).</summary>
    public void Request() => Interlocked.Or(ref _state, Requested);

    /// <summary>Claims and requests at once, whoever claimed first (the read loop's end, an abort): a close that comes
    /// later does nothing.</summary>
    public void Claim() => Interlocked.Or(ref _state, Claimed | Requested);

    public readonly DisconnectReason? Reason => _reason == 0 ? null : (DisconnectReason)(_reason - 1);

    /// <summary>The first reason set stays.</summary>
    public void SetReason(DisconnectReason reason) => Interlocked.CompareExchange(ref _reason, (int)reason + 1, 0);

    /// <summary>Runs <paramref name="abort"/> once <paramref name="graceMs"/> have passed, unless the timer is armed
    /// already (a second close arms none). The timer is reached only through this struct, so pass its holder as
    /// <paramref name="state"/> (the session passes itself): a timer nothing reaches is collected and never fires.</summary>
    public void ArmAbortTimer(TimerCallback abort, object? state, int graceMs)
    {
        var timer = new Timer(abort, state, graceMs, Timeout.Infinite);
        if (Interlocked.CompareExchange(ref _abortTimer, timer, null) is not null) timer.Dispose();
    }

    /// <summary>The session has ended: the timer, if armed, is not needed any more, and none is armed after this.</summary>
    public void Ended()
    {
        var timer = Interlocked.Exchange(ref _abortTimer, s_ended);
        if (timer != s_ended) timer?.Dispose();
    }
}
