using System.Collections.Concurrent;

namespace WsBroker.Load;

/// <summary>
/// One timer for every connection of the process that must send heart-beats (not a timer per connection: at 19,000
/// connections that would be 19,000 timers in the tool). Each tick sends an EOL on the connections that have sent nothing
/// for their negotiated interval less one tick, so no gap exceeds the interval (STOMP 1.2 "Heart-beating": the client must
/// send something at least every that many ms). Connections opened over time fall due over time, so the beats of a large
/// run are spread over the interval, not sent in one burst.
/// </summary>
internal static class HeartBeats
{
    private static readonly ConcurrentDictionary<LoadConnection, byte> s_connections = new();
    private static readonly Lock s_gate = new();
    private static PeriodicTimer? s_timer;
    private static long s_sent;

    /// <summary>Heart-beats sent by this process so far.</summary>
    public static long Sent => Interlocked.Read(ref s_sent);

    /// <summary>The tick for an interval: a quarter of it, from 10 ms to 1 s (as the broker's own scanner).</summary>
    public static TimeSpan TickFor(int intervalMs) => TimeSpan.FromMilliseconds(Math.Clamp(intervalMs / 4, 10, 1000));

    public static void Add(LoadConnection connection, int intervalMs)
    {
        s_connections[connection] = 0;
        lock (s_gate)
        {
            var tick = TickFor(intervalMs);
            if (s_timer is null)
            {
                s_timer = new PeriodicTimer(tick);
                _ = Task.Run(() => TickLoopAsync(s_timer));
            }
            else if (tick < s_timer.Period) s_timer.Period = tick;
        }
    }

    public static void Remove(LoadConnection connection) => s_connections.TryRemove(connection, out _);

    internal static void CountSent() => Interlocked.Increment(ref s_sent);

    /// <summary>Runs for the life of the process (one timer, idle when no connection is registered).</summary>
    private static async Task TickLoopAsync(PeriodicTimer timer)
    {
        while (await timer.WaitForNextTickAsync())
        {
            var now = Environment.TickCount64;
            var tickMs = (long)timer.Period.TotalMilliseconds;
            foreach (var connection in s_connections.Keys) connection.SendHeartBeatIfDue(now, tickMs);
        }
    }
}
