using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Sessions;

/// <summary>One timer for all sessions: sends due heart-beats, closes silent, never-connected or half-sent ones, cuts
/// slow consumers whose socket send made no progress for <c>Broker:SlowConsumerMs</c>, stops sessions whose token
/// expired (docs/design.md §3 "Long-lived sessions"), and ticks the transports' own keep-alives (a raw topic URL's
/// WebSocket pings), so no connection owns a timer. Its cost grows with the sessions, never with their traffic: a scan
/// reads a few fields per session, about 0.34 ms for 19,000 idle ones walking the registry's array
/// (bench/ScannerBenchmarks.cs; memory-bound, more with cold caches), at most one scan a second. A wheel that buckets
/// sessions by due time would touch fewer of them per tick, but every frame received or sent would have to move its
/// session between buckets, a cost that grows with traffic.</summary>
public sealed partial class HeartBeatScanner(BrokerServices services, ILogger<HeartBeatScanner> logger) : BackgroundService
{
    private const int FailureLogIntervalMs = 10_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = services.Options;
        var smallest = new[] { options.HeartBeatSendMs, options.HeartBeatReceiveMs, options.ConnectTimeoutMs, options.PartialFrameTimeoutMs, options.SlowConsumerMs }
            .Where(v => v > 0).DefaultIfEmpty(1000).Min();
        var tickMs = Math.Clamp(smallest / 4, 10, 1000);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(tickMs));
        long quietUntilMs = 0;
        var unlogged = 0;                                           // failures since the last line, and the first of them
        Exception? firstUnlogged = null;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var nowMs = Environment.TickCount64;
            var (failed, first) = Scan(services.Sessions, nowMs, tickMs);
            unlogged += failed;
            firstUnlogged ??= first;
            if (unlogged == 0 || nowMs < quietUntilMs) continue;
            Log.SessionsFailed(logger, firstUnlogged, unlogged);     // at most one line per interval
            (unlogged, firstUnlogged, quietUntilMs) = (0, null, nowMs + FailureLogIntervalMs);
        }
    }

    /// <summary>One tick over every session (the benchmark calls it too); returns how many sessions failed in it, and the
    /// first failure. A session whose checks throw is dropped: one broken session must stop neither the others' beats
    /// and timeouts nor the broker (a background service's exception stops the host), and would never time out.</summary>
    internal static (int Failed, Exception? First) Scan(SessionRegistry sessions, long nowMs, int tickMs = 0)
    {
        var failed = 0;
        Exception? first = null;
        foreach (var session in sessions.All)
        {
            try
            {
                session.CheckTimeouts(nowMs);            // first: a session it closes (its token expired, say) gets no beat
                // A beat that would be late by the next tick goes now: STOMP's "at least every n ms" holds, at 1 s ticks and
                // 10 s beats one every 9-10 s (waiting for 10 s to be reached made it 10-11 s, as a tick's clock reading wavers).
                session.SendHeartBeatIfDue(nowMs, tickMs);
                session.Transport.KeepAlive(nowMs);
            }
            catch (Exception ex)
            {
                failed++;
                first ??= ex;
                try
                {
                    session.Abort(DisconnectReason.TransportError);
                }
                catch (Exception)
                {
                    // Its transport fails even to drop: it is counted above, and the scan goes on to the others.
                }
            }
        }
        return (failed, first);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 104, Level = LogLevel.Error, Message = "heart-beat scan: {Failed} sessions failed their checks and were dropped since the last such line (at most one every 10 s; the first failure follows)")]
        public static partial void SessionsFailed(ILogger logger, Exception? first, int failed);
    }
}
