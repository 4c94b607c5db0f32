using WsBroker.Broker.Options;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// The times a session's timeouts are judged by: when it started, the negotiated heart-beat intervals, when the client last
/// sent bytes, since when a frame has been half-read, when the writer last sent, since when a socket send has been
/// pending (the no-progress clock of slow consumers and stalls), and when the session's token expires. The read loop and
/// the writer loop set them; the heart-beat scanner and paused publishers read them.
/// <para>A struct kept in a (non-readonly) field of its session, like <see cref="Outbox"/>, so an idle session pays for no
/// extra object: use it only through that field, never through a copy.</para>
/// </summary>
internal struct SessionClock(long nowMs)
{
    private long _lastReceivedMs = nowMs;
    private long _partialSinceMs;                                 // since when a frame has been half-read (0: none)
    private long _lastSentMs = nowMs;
    private long _sendingSinceMs;                                 // since when a socket send has been pending (0: none)
    private long _expiresAtMs = long.MaxValue;                    // the token's exp + skew (MaxValue: never; Expired: passed)

    /// <summary>The value of <see cref="ExpiresAtMs"/> once the token has expired: below every clock reading.</summary>
    private const long Expired = long.MinValue;

    public long StartedAtMs { get; } = nowMs;

    /// <summary>Negotiated heart-beat: send something every <see cref="HeartBeatSendMs"/>, expect something every
    /// <see cref="HeartBeatReceiveMs"/> (0 = off).</summary>
    public int HeartBeatSendMs { get; set; }
    public int HeartBeatReceiveMs { get; set; }

    /// <summary>Since when a socket send has been pending, 0 when none.</summary>
    public long SendPendingSinceMs => Volatile.Read(ref _sendingSinceMs);

    // ---- the read side -------------------------------------------------------------------------------------------------

    /// <summary>Marks received bytes for the heart-beat check; returns the time it read.</summary>
    public long Received()
    {
        var now = Environment.TickCount64;
        Volatile.Write(ref _lastReceivedMs, now);
        return now;
    }

    /// <summary>Everything read has been consumed: no frame is half-read.</summary>
    public void NoPartialFrame() => Volatile.Write(ref _partialSinceMs, 0);

    /// <summary>A read left a frame unfinished; <paramref name="progressed"/>: the read consumed something.</summary>
    public void PartialFrame(bool progressed)
    {
        // Its clock starts when it began, i.e. now unless nothing was consumed (then the same frame has been waiting since an
        // earlier read).
        if (Volatile.Read(ref _partialSinceMs) == 0 || progressed) Volatile.Write(ref _partialSinceMs, Environment.TickCount64);
    }

    /// <summary>The broker paused reading from <paramref name="pausedAtMs"/> until now: a frame that spans several reads is
    /// not timed for the pauses between them.</summary>
    public void ExcusePartialFrame(long pausedAtMs)
    {
        if (Volatile.Read(ref _partialSinceMs) is var since and > 0)
            Volatile.Write(ref _partialSinceMs, since + Environment.TickCount64 - pausedAtMs);
    }

    // ---- the write side ------------------------------------------------------------------------------------------------

    /// <summary>The writer hands a message to the socket at <paramref name="nowMs"/>: the no-progress clock runs until
    /// <see cref="SendEnded"/>.</summary>
    public void SendStarted(long nowMs) => Volatile.Write(ref _sendingSinceMs, nowMs);

    public void SendEnded()
    {
        Volatile.Write(ref _sendingSinceMs, 0);
        Volatile.Write(ref _lastSentMs, Environment.TickCount64);
    }

    /// <summary>A send has made no progress for <paramref name="stallMs"/>: the client stopped reading.</summary>
    public bool IsStalled(int stallMs) =>
        Volatile.Read(ref _sendingSinceMs) is var since and > 0 && Environment.TickCount64 - since >= stallMs;

    /// <summary>True when a heart-beat is due: nothing was sent for <see cref="HeartBeatSendMs"/>, or will have been by
    /// <paramref name="earlyMs"/> from now (the scanner's next tick: a beat sent then would be late). Then counts it as
    /// sent, so there is one beat per interval even if the writer is slow.</summary>
    public bool TakeHeartBeat(long nowMs, int earlyMs = 0)
    {
        if (HeartBeatSendMs <= 0 || nowMs + Math.Min(earlyMs, HeartBeatSendMs / 4) - Volatile.Read(ref _lastSentMs) < HeartBeatSendMs) return false;
        Volatile.Write(ref _lastSentMs, nowMs);
        return true;
    }

    // ---- the token's lifetime ------------------------------------------------------------------------------------------

    /// <summary>When the session's token expires (its <c>exp</c> plus <c>Auth:ClockSkewSeconds</c>), on this clock;
    /// <see cref="long.MaxValue"/>: never; below every reading once it has expired.</summary>
    public long ExpiresAtMs => Volatile.Read(ref _expiresAtMs);

    public bool IsExpired => Volatile.Read(ref _expiresAtMs) == Expired;

    /// <summary>A token's <c>exp</c> plus the validator's <paramref name="skew"/>, on this clock (monotonic milliseconds);
    /// <see cref="DateTimeOffset.MaxValue"/> (no exp) is never.</summary>
    public static long ExpiryOf(DateTimeOffset expiresAt, TimeSpan skew)
    {
        if (expiresAt == DateTimeOffset.MaxValue) return long.MaxValue;
        var left = (expiresAt + skew - DateTimeOffset.UtcNow).TotalMilliseconds;
        return Environment.TickCount64 + (long)Math.Clamp(left, -1e12, 1e12);
    }

    /// <summary>Moves the expiry to <paramref name="expiresAtMs"/> (a token refresh); false when the current one had passed
    /// at <paramref name="nowMs"/> (then the session has expired, refresh or not). Atomic with <see cref="TryExpire"/>:
    /// a refresh and the expiry never both win.</summary>
    public bool TryExtend(long nowMs, long expiresAtMs)
    {
        while (true)
        {
            var current = Volatile.Read(ref _expiresAtMs);
            if (nowMs >= current) return false;
            if (Interlocked.CompareExchange(ref _expiresAtMs, expiresAtMs, current) == current) return true;
        }
    }

    /// <summary>True for the one call that finds the expiry passed at <paramref name="nowMs"/> and marks the token expired.</summary>
    public bool TryExpire(long nowMs)
    {
        while (true)
        {
            var current = Volatile.Read(ref _expiresAtMs);
            if (current == Expired || nowMs < current) return false;
            if (Interlocked.CompareExchange(ref _expiresAtMs, Expired, current) == current) return true;
        }
    }

    // ---- the verdict ---------------------------------------------------------------------------------------------------

    /// <summary>The timeout that has passed at <paramref name="nowMs"/>: a send pending for <c>Broker:SlowConsumerMs</c>;
    /// the token's expiry; unless <paramref name="readingPaused"/> (the client's silence is then not its fault), no CONNECT within
    /// <c>Broker:ConnectTimeoutMs</c>, silence for more than twice <see cref="HeartBeatReceiveMs"/>, or a frame half-read
    /// for longer than <c>Broker:PartialFrameTimeoutMs</c>.</summary>
    public SessionTimeout Due(long nowMs, BrokerOptions options, bool connected, bool readingPaused)
    {
        var sendingSince = Volatile.Read(ref _sendingSinceMs);
        if (sendingSince > 0 && nowMs - sendingSince > options.SlowConsumerMs) return SessionTimeout.NoSendProgress;
        if (nowMs >= ExpiresAtMs) return SessionTimeout.TokenExpired;
        if (readingPaused) return SessionTimeout.None;
        var silent = nowMs - Volatile.Read(ref _lastReceivedMs);
        var partialSince = Volatile.Read(ref _partialSinceMs);
        if (!connected && nowMs - StartedAtMs > options.ConnectTimeoutMs) return SessionTimeout.NoConnect;
        if (HeartBeatReceiveMs > 0 && silent > 2L * HeartBeatReceiveMs) return SessionTimeout.HeartBeat;
        if (partialSince > 0 && nowMs - partialSince > options.PartialFrameTimeoutMs) return SessionTimeout.PartialFrame;
        return SessionTimeout.None;
    }
}
