namespace WsBroker.Broker.Sessions;

/// <summary>One timer for all sessions: sends due heart-beats, closes silent, never-connected or half-sent ones, cuts
/// slow consumers whose socket send made no progress for <c>Broker:SlowConsumerMs</c>, stops sessions whose token
/// expired (docs/design.md §3 "Long-lived sessions"), and ticks the transports' own keep-alives (a raw topic URL's
/// WebSocket pings), so no connection owns a timer. Its cost grows with the sessions, never with their traffic: a scan
/// reads a few fields per session, about 0.34 ms for 19,000 idle ones walking the registry's array
/// (bench/ScannerBenchmarks.cs; memory-bound, more with cold caches), at most one scan a second. A wheel that buckets
/// sessions by due time would touch fewer of them per tick, but every frame received or sent would have to move its
/// session between buckets, a cost that grows with traffic.</summary>
public sealed class HeartBeatScanner(BrokerServices services) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = services.Options;
        var smallest = new[] { options.HeartBeatSendMs, options.HeartBeatReceiveMs, options.ConnectTimeoutMs, options.PartialFrameTimeoutMs, options.SlowConsumerMs }
            .Where(v => v > 0).DefaultIfEmpty(1000).Min();
        var tickMs = Math.Clamp(smallest / 4, 10, 1000);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(tickMs));
        while (await timer.WaitForNextTickAsync(stoppingToken)) Scan(services.Sessions, Environment.TickCount64, tickMs);
    }

    /// <summary>One tick over every session (the benchmark calls it too).</summary>
    internal static void Scan(SessionRegistry sessions, long nowMs, int tickMs = 0)
    {
        foreach (var session in sessions.All)
        {
            session.CheckTimeouts(nowMs);                // first: a session it closes (its token expired, say) gets no beat
            // A beat that would be late by the next tick goes now: STOMP's "at least every n ms" holds, at 1 s ticks and
            // 10 s beats one every 9-10 s (waiting for 10 s to be reached made it 10-11 s, as a tick's clock reading wavers).
            session.SendHeartBeatIfDue(nowMs, tickMs);
            session.Transport.KeepAlive(nowMs);
        }
    }
}
