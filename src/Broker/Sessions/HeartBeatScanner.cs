namespace WsBroker.Broker.Sessions;

/// <summary>One timer for all sessions: sends due heart-beats, closes silent, never-connected or half-sent ones, cuts
/// slow consumers whose socket send made no progress for <c>Broker:SlowConsumerMs</c>, and stops sessions whose token
/// expired (docs/design.md §3 "Long-lived sessions"). Its cost grows with the sessions, never with their traffic.</summary>
public sealed class HeartBeatScanner(BrokerServices services) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = services.Options;
        var smallest = new[] { options.HeartBeatSendMs, options.HeartBeatReceiveMs, options.ConnectTimeoutMs, options.PartialFrameTimeoutMs, options.SlowConsumerMs }
            .Where(v => v > 0).DefaultIfEmpty(1000).Min();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Clamp(smallest / 4, 10, 1000)));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = Environment.TickCount64;
            foreach (var session in services.Sessions.All)
            {
                session.SendHeartBeatIfDue(now);
                session.CheckTimeouts(now);
            }
        }
    }
}
