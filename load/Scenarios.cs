using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using HdrHistogram;
using WsBroker.Protocol;

namespace WsBroker.Load;

/// <summary>Counters of one run: sends, deliveries, latency histogram (µs) and deliveries per second.</summary>
public sealed class RunStats
{
    private readonly LongHistogram _latency = new(TimeSpan.TicksPerHour / 10, 3);   // up to 6 minutes, in µs
    private readonly Lock _gate = new();
    private readonly long[] _perSecond = new long[3700];
    private long _sent;
    private long _received;
    private long _errors;
    private long _measureFromTicks = long.MaxValue;
    private long _startTicks = Stopwatch.GetTimestamp();

    public long Sent => Interlocked.Read(ref _sent);
    public long Received => Interlocked.Read(ref _received);
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Every delivery, warm-up included (for loss accounting).</summary>
    public long DeliveredAll => Interlocked.Read(ref _deliveredAll);
    private long _deliveredAll;
    public bool Measuring => Stopwatch.GetTimestamp() >= Interlocked.Read(ref _measureFromTicks);

    public void Start(TimeSpan warmup)
    {
        _startTicks = Stopwatch.GetTimestamp();
        Interlocked.Exchange(ref _measureFromTicks, _startTicks + (long)(warmup.TotalSeconds * Stopwatch.Frequency));
    }

    public void CountSent() => Interlocked.Increment(ref _sent);

    public void CountError() => Interlocked.Increment(ref _errors);

    public void CountErrors(long count) => Interlocked.Add(ref _errors, count);

    /// <summary>A delivery whose send time was <paramref name="sentTicks"/> (Stopwatch ticks).</summary>
    public void Delivered(long sentTicks)
    {
        var now = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _deliveredAll);
        if (now < Interlocked.Read(ref _measureFromTicks)) return;
        Interlocked.Increment(ref _received);
        var second = (int)((now - _measureFromTicks) / Stopwatch.Frequency);
        if (second < _perSecond.Length) Interlocked.Increment(ref _perSecond[second]);
        if (sentTicks <= 0) return;
        var micros = (long)LoadConnection.TicksToMicroseconds(now - sentTicks);
        lock (_gate) _latency.RecordValue(Math.Clamp(micros, 1, _latency.HighestTrackableValue));
    }

    public (double P50, double P90, double P99, double P999, double Max, double Mean) LatencyMs()
    {
        lock (_gate)
        {
            if (_latency.TotalCount == 0) return (0, 0, 0, 0, 0, 0);
            double Ms(long us) => us / 1000.0;
            return (Ms(_latency.GetValueAtPercentile(50)), Ms(_latency.GetValueAtPercentile(90)), Ms(_latency.GetValueAtPercentile(99)),
                Ms(_latency.GetValueAtPercentile(99.9)), Ms(_latency.GetMaxValue()), _latency.GetMean() / 1000.0);
        }
    }

    public long[] PerSecond(int seconds) => _perSecond.Take(Math.Max(1, seconds)).ToArray();

    public double ElapsedMeasuredSeconds => Math.Max(0, (Stopwatch.GetTimestamp() - Interlocked.Read(ref _measureFromTicks)) / (double)Stopwatch.Frequency);
}

/// <summary>The result of one scenario run, as written to JSON, Markdown and plots.</summary>
public sealed record ScenarioResult(string Scenario, string Label, string Url, int Connections, double Seconds, long Sent, long Received,
    double PerSecond, double P50Ms, double P90Ms, double P99Ms, double P999Ms, double MaxMs, double MeanMs, long Lost, long Errors,
    IReadOnlyDictionary<string, double> Extra, long[] Timeline)
{
    /// <summary>Every --url of the run (connections went round-robin over them); <see cref="Url"/> is the first.</summary>
    public IReadOnlyList<string> Urls { get; init; } = [Url];
    /// <summary>--cross: every message went from the first URL's node to the second's.</summary>
    public bool Cross { get; init; }
}

/// <summary>The scenarios (failover: <see cref="Failover"/>). Each is bounded by --duration (plus --warmup) and by --messages.</summary>
public static class Scenarios
{
    public static Task<ScenarioResult> RunAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken) => o.Scenario switch
    {
        "pairs" => PairsAsync(o, stats, cancellationToken),
        "fanout" => FanOutAsync(o, stats, cancellationToken),
        "rate" => RateAsync(o, stats, cancellationToken),
        "idle" => IdleScenario.RunAsync(o, stats, cancellationToken),
        "chat" => ChatAsync(o, stats, cancellationToken),
        "chat-rate" => ChatRateAsync(o, stats, cancellationToken),
        "failover" => Failover.RunAsync(o, stats, cancellationToken),
        _ => throw new LoadUsageException($"unknown scenario '{o.Scenario}'"),
    };

    // ---- pairs: closed loop, W in flight each way ---------------------------------------------------------------------

    private static async Task<ScenarioResult> PairsAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        var tokens = new TokenSource(o);
        var connections = new List<LoadConnection>();
        var loops = new List<Task>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var ends = new List<(LoadConnection Conn, string To, SemaphoreSlim Credits)>();
            for (var i = 0; i < o.Pairs; i++)
            {
                var (a, b) = await ConnectPairAsync(o, tokens, i, cancellationToken);
                connections.Add(a);
                connections.Add(b);
                await a.SubscribeAsync($"{o.Prefix}.pair{i}.a", "a", cancellationToken);
                await b.SubscribeAsync($"{o.Prefix}.pair{i}.b", "b", cancellationToken);
                ends.Add((a, $"{o.Prefix}.pair{i}.b", new SemaphoreSlim(o.InFlight)));
                ends.Add((b, $"{o.Prefix}.pair{i}.a", new SemaphoreSlim(o.InFlight)));
            }
            stats.Start(o.Warmup);
            stop.CancelAfter(HardLimit(o));                          // a broker that stops reading cannot hold the run
            using var sending = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
            var senders = new List<Task>();
            foreach (var (conn, to, credits) in ends)
            {
                // A delivery to this end gives it credit to send the next message back: W messages stay in flight.
                loops.Add(WatchAsync(conn, frame =>
                {
                    if (frame.Command != StompCommand.Message) return;
                    stats.Delivered(LoadConnection.ReadTimestamp(frame.Body));
                    credits.Release();
                }, stats, stop.Token));
                senders.Add(SendLoopAsync(conn, to, credits, o, stats, sending.Token, stop.Token));
            }
            await WaitAsync(o, stats, stop.Token);
            var lost = await EndClosedLoopAsync(sending, senders, stop, loops, () => stats.Sent - stats.DeliveredAll);
            return Result(o, stats, connections.Count, lost);
        }
        finally
        {
            stop.Cancel();
            await DisposeAllAsync(connections);
        }
    }

    /// <summary>Pair <paramref name="i"/> (pairs, rate): a as admin1, b as client1; a on the first URL and b on the second
    /// with --cross, else round-robin over the URLs in the order they open (2i, 2i+1).</summary>
    private static async Task<(LoadConnection A, LoadConnection B)> ConnectPairAsync(LoadOptions o, TokenSource tokens, int i, CancellationToken cancellationToken)
    {
        var a = await LoadConnection.ConnectAsync(o, o.Cross ? o.Urls[0] : o.UrlFor(2 * i), await tokens.ForAsync("admin1"), cancellationToken);
        try
        {
            return (a, await LoadConnection.ConnectAsync(o, o.Cross ? o.Urls[1] : o.UrlFor(2 * i + 1), await tokens.ForAsync("client1"), cancellationToken));
        }
        catch
        {
            await a.DisposeAsync();
            throw;
        }
    }

    /// <summary>Sends while credits allow. <paramref name="sending"/> ends the loop between sends; only <paramref name="stop"/>
    /// cancels a send in progress (cancelling a WebSocket send aborts the socket, and what was in flight would look lost).</summary>
    private static async Task SendLoopAsync(LoadConnection conn, string to, SemaphoreSlim credits, LoadOptions o, RunStats stats,
        CancellationToken sending, CancellationToken stop)
    {
        try
        {
            while (!sending.IsCancellationRequested && stats.Sent < o.Messages)
            {
                await credits.WaitAsync(sending);
                await conn.SendAsync(to, Stopwatch.GetTimestamp(), o.Size, null, stop);
                stats.CountSent();
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or System.Net.WebSockets.WebSocketException) { }
    }

    // ---- fanout: one publisher, S subscribers ---------------------------------------------------------------------------

    private static async Task<ScenarioResult> FanOutAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        IdleScenario.CheckFileLimit(o.Subscribers + 1, _ => "fanout holds every subscriber in one process: use fewer --subscribers");
        var tokens = new TokenSource(o);
        var connections = new List<LoadConnection>();
        var counts = new long[o.Subscribers];
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loops = new List<Task>();
        try
        {
            var destination = $"{o.Prefix}.fanout";
            // --cross: every subscriber on the second URL's node, the publisher on the first's.
            var subscribers = await ConnectManyAsync(o, o.Subscribers, i => tokens.ForAsync("client" + (i % 3 + 1)), cancellationToken,
                url: i => o.Cross ? o.Urls[1] : o.UrlFor(i));
            connections.AddRange(subscribers);
            stop.CancelAfter(HardLimit(o) + TimeSpan.FromSeconds(10));
            await Parallel.ForEachAsync(subscribers.Select((c, i) => (c, i)), new ParallelOptions { MaxDegreeOfParallelism = o.ConnectConcurrency, CancellationToken = cancellationToken },
                async (s, ct) => await s.c.SubscribeAsync(destination, "f" + s.i, ct));
            var publisher = await LoadConnection.ConnectAsync(o, o.Cross ? o.Urls[0] : o.UrlFor(o.Subscribers), await tokens.ForAsync("admin1"), cancellationToken);
            connections.Add(publisher);
            for (var i = 0; i < subscribers.Count; i++)
            {
                var index = i;
                loops.Add(WatchAsync(subscribers[i], frame =>
                {
                    if (frame.Command != StompCommand.Message) return;
                    Interlocked.Increment(ref counts[index]);
                    stats.Delivered(LoadConnection.ReadTimestamp(frame.Body));
                }, stats, stop.Token));
            }
            stats.Start(TimeSpan.Zero);                                // every message counts for loss; warm-up is not used here
            var total = (long)Math.Min(o.Messages, o.Rate * (o.Duration + o.Warmup).TotalSeconds);
            var lag = await Pacer.RunAsync(total, o.Rate, (k, intended) => CountedSendAsync(publisher, destination, intended, o, stats, stop.Token), stop.Token);
            // Stragglers: wait until everyone has everything, or 10 s.
            var deadline = Stopwatch.StartNew();
            while (counts.Any(c => Interlocked.Read(ref c) < stats.Sent) && deadline.Elapsed < TimeSpan.FromSeconds(10) && !stop.IsCancellationRequested)
                await Task.Delay(50, cancellationToken);
            stop.Cancel();
            var lost = counts.Sum(c => stats.Sent - c);
            var extra = new Dictionary<string, double>
            {
                ["subscribers"] = o.Subscribers,
                ["min_received"] = counts.Min(),
                ["max_received"] = counts.Max(),
                ["subscribers_with_loss"] = counts.Count(c => c < stats.Sent),
                ["send_lag_p99_ms"] = lag.GetValueAtPercentile(99) / 1000.0,
            };
            return Result(o, stats, connections.Count, lost, extra);
        }
        finally
        {
            stop.Cancel();
            await DisposeAllAsync(connections);
        }
    }

    // ---- rate: fixed offered load, coordinated-omission-corrected latency -----------------------------------------------

    private static async Task<ScenarioResult> RateAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        var tokens = new TokenSource(o);
        var connections = new List<LoadConnection>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loops = new List<Task>();
        try
        {
            var senders = new List<(LoadConnection Conn, string To)>();
            for (var i = 0; i < o.Pairs; i++)
            {
                var (a, b) = await ConnectPairAsync(o, tokens, i, cancellationToken);
                connections.Add(a);
                connections.Add(b);
                await b.SubscribeAsync($"{o.Prefix}.rate{i}", "r", cancellationToken);
                loops.Add(WatchAsync(b, frame =>
                {
                    if (frame.Command == StompCommand.Message) stats.Delivered(LoadConnection.ReadTimestamp(frame.Body));
                }, stats, stop.Token));
                senders.Add((a, $"{o.Prefix}.rate{i}"));
            }
            var lag = await PaceAsync(o, stats, senders, stop);
            var lost = await DrainAsync(() => stats.Sent - stats.DeliveredAll);
            stop.Cancel();
            return Result(o, stats, connections.Count, lost,
                new Dictionary<string, double> { ["offered_rate"] = o.Rate, ["send_lag_p99_ms"] = lag.GetValueAtPercentile(99) / 1000.0,
                    ["send_lag_max_ms"] = lag.GetMaxValue() / 1000.0 });
        }
        finally
        {
            stop.Cancel();
            await DisposeAllAsync(connections);
        }
    }

    // ---- chat: stored messages with receipts (WsBroker) ---------------------------------------------------------------------

    private static async Task<ScenarioResult> ChatAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        var tokens = new TokenSource(o);
        var connections = new List<LoadConnection>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loops = new List<Task>();
        long rejected = 0;
        var outstanding = new List<ConcurrentDictionary<string, long>>();
        using var sending = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
        var senders = new List<Task>();
        try
        {
            for (var i = 0; i < o.Pairs; i++)
            {
                var user = "client" + (i % 3 + 1);                    // the embedded demo customers
                var conn = await LoadConnection.ConnectAsync(o, o.UrlFor(i), await tokens.ForAsync(user), cancellationToken);
                connections.Add(conn);
                await conn.SubscribeAsync("/user/queue/errors", "errors", cancellationToken);
                var sentAt = new ConcurrentDictionary<string, long>();
                var credits = new SemaphoreSlim(o.InFlight);
                var destination = $"/topic/private-chat/admin1/{user}";
                outstanding.Add(sentAt);
                loops.Add(WatchAsync(conn, frame =>
                {
                    if (frame.Command == StompCommand.Receipt && sentAt.TryRemove(frame.GetHeaderString("receipt-id"u8) ?? "", out var t))
                    {
                        stats.Delivered(t);                             // a receipt = the message is stored
                        credits.Release();
                    }
                    else if (frame.Command == StompCommand.Message && frame.GetHeaderString("destination"u8) == "/user/queue/errors")
                    {
                        Interlocked.Increment(ref rejected);
                        stats.CountError();
                        if (frame.GetHeaderString("receipt-id"u8) is { } r && sentAt.TryRemove(r, out _)) credits.Release();
                    }
                }, stats, stop.Token));
                var n = 0;
                senders.Add(Task.Run(async () =>
                {
                    try
                    {
                        while (!sending.IsCancellationRequested && stats.Sent < o.Messages)
                        {
                            await credits.WaitAsync(sending.Token);
                            var receipt = "c" + n++;
                            var now = Stopwatch.GetTimestamp();
                            sentAt[receipt] = now;
                            try { await conn.SendAsync(destination, now, o.Size, receipt, stop.Token); }    // not `sending`: see SendLoopAsync
                            catch (OperationCanceledException) { sentAt.TryRemove(receipt, out _); throw; }
                            stats.CountSent();
                        }
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or System.Net.WebSockets.WebSocketException) { }
                }, CancellationToken.None));
            }
            stats.Start(o.Warmup);
            stop.CancelAfter(HardLimit(o));                          // a broker that stops reading cannot hold the run
            await WaitAsync(o, stats, stop.Token);
            // A message with neither receipt nor rejection after the drain is lost.
            var lost = await EndClosedLoopAsync(sending, senders, stop, loops, () => outstanding.Sum(d => (long)d.Count));
            return Result(o, stats, connections.Count, lost, new Dictionary<string, double> { ["rejected"] = rejected });
        }
        finally
        {
            stop.Cancel();
            await DisposeAllAsync(connections);
        }
    }

    // ---- chat-rate: stored chat messages at a fixed offered rate, SEND to the admin's MESSAGE (WsBroker) ------------------

    /// <summary>The customers client1..3 send to their conversations at <c>--rate</c> in all (paced from one thread, as
    /// <c>rate</c>); admin1, subscribed to <c>/topic/private-chat/admin1/*</c>, receives each message after its commit. The
    /// latency is from the intended send time to the admin's MESSAGE: it includes the group commit.</summary>
    private static async Task<ScenarioResult> ChatRateAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        var tokens = new TokenSource(o);
        var connections = new List<LoadConnection>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loops = new List<Task>();
        long rejected = 0;
        try
        {
            var admin = await LoadConnection.ConnectAsync(o, o.UrlFor(0), await tokens.ForAsync("admin1"), cancellationToken);
            connections.Add(admin);
            await admin.SubscribeAsync("/topic/private-chat/admin1/*", "all", cancellationToken);
            loops.Add(WatchAsync(admin, frame =>
            {
                if (frame.Command == StompCommand.Message) stats.Delivered(LoadConnection.ReadTimestamp(frame.Body));
            }, stats, stop.Token));
            var senders = new List<(LoadConnection Conn, string To)>();
            for (var i = 0; i < Math.Max(1, Math.Min(o.Pairs, 3)); i++)
            {
                var user = "client" + (i + 1);                          // the embedded demo customers
                var conn = await LoadConnection.ConnectAsync(o, o.UrlFor(i + 1), await tokens.ForAsync(user), cancellationToken);
                connections.Add(conn);
                await conn.SubscribeAsync("/user/queue/errors", "errors", cancellationToken);
                loops.Add(WatchAsync(conn, frame =>
                {
                    if (frame.Command == StompCommand.Message) { Interlocked.Increment(ref rejected); stats.CountError(); }
                }, stats, stop.Token));
                senders.Add((conn, $"/topic/private-chat/admin1/{user}"));
            }
            var lag = await PaceAsync(o, stats, senders, stop);
            var lost = await DrainAsync(() => stats.Sent - stats.DeliveredAll - Interlocked.Read(ref rejected));
            stop.Cancel();
            return Result(o, stats, connections.Count, lost, new Dictionary<string, double>
            {
                ["offered_rate"] = o.Rate, ["rejected"] = rejected, ["send_lag_p99_ms"] = lag.GetValueAtPercentile(99) / 1000.0,
            });
        }
        finally
        {
            stop.Cancel();
            await DisposeAllAsync(connections);
        }
    }

    // ---- shared ---------------------------------------------------------------------------------------------------------

    /// <summary>A receive loop that counts an ERROR from the broker, and the connection ending before the run did, as errors.</summary>
    private static async Task WatchAsync(LoadConnection conn, Action<StompFrameView> onMessage, RunStats stats, CancellationToken stop)
    {
        await conn.ReceiveLoopAsync(frame =>
        {
            if (frame.Command == StompCommand.Error) stats.CountError();
            else onMessage(frame);
        }, stop);
        if (!stop.IsCancellationRequested) stats.CountError();
    }

    /// <summary>Offers <c>--rate</c> messages per second round-robin over <paramref name="senders"/> (rate, chat-rate), from
    /// one pacing thread, for the warm-up and the duration; the run is bounded in time. Returns the pacer's own lateness.</summary>
    private static Task<HdrHistogram.LongHistogram> PaceAsync(LoadOptions o, RunStats stats, List<(LoadConnection Conn, string To)> senders,
        CancellationTokenSource stop)
    {
        stats.Start(o.Warmup);
        stop.CancelAfter(HardLimit(o));
        var total = (long)Math.Min(o.Messages, o.Rate * (o.Duration + o.Warmup).TotalSeconds);
        return Pacer.RunAsync(total, o.Rate, (k, intended) =>
        {
            var (conn, to) = senders[(int)(k % senders.Count)];
            return CountedSendAsync(conn, to, intended, o, stats, stop.Token);
        }, stop.Token);
    }

    /// <summary>A send of a paced scenario: a broker that drops the sender is an error, not a quiet end of the run.</summary>
    private static async ValueTask CountedSendAsync(LoadConnection conn, string to, long timestamp, LoadOptions o, RunStats stats, CancellationToken stop)
    {
        try { await conn.SendAsync(to, timestamp, o.Size, null, stop); }
        catch (System.Net.WebSockets.WebSocketException) { stats.CountError(); throw; }
        stats.CountSent();
    }

    /// <summary>Bounds a paced run in time even when the broker stops reading (its sends would otherwise wait for ever).</summary>
    private static TimeSpan HardLimit(LoadOptions o) => o.Warmup + o.Duration + TimeSpan.FromSeconds(30);

    /// <summary>Ends a closed-loop run (pairs, chat): stops the senders between sends, waits for them, drains what is in
    /// flight, then stops the receive loops. Returns how many messages were not delivered (or receipted).</summary>
    private static async Task<long> EndClosedLoopAsync(CancellationTokenSource sending, List<Task> senders, CancellationTokenSource stop,
        List<Task> loops, Func<long> outstanding)
    {
        sending.Cancel();
        await SettledAsync(senders);
        var lost = await DrainAsync(outstanding);
        stop.Cancel();
        await SettledAsync(loops);
        return lost;
    }

    /// <summary>Waits until every task has ended, however it ended.</summary>
    internal static Task SettledAsync(IEnumerable<Task> tasks) => Task.WhenAll(tasks.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));

    /// <summary>After the senders stopped: waits (up to 5 s) until every message sent was delivered; returns how many were not.</summary>
    private static async Task<long> DrainAsync(Func<long> outstanding)
    {
        var clock = Stopwatch.StartNew();
        while (outstanding() > 0 && clock.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(20, CancellationToken.None);
        return Math.Max(0, outstanding());
    }

    private static async Task WaitAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        var end = Stopwatch.StartNew();
        var limit = o.Warmup + o.Duration;
        while (end.Elapsed < limit && stats.Sent < o.Messages && !cancellationToken.IsCancellationRequested)
            await Task.Delay(50, CancellationToken.None);
    }

    /// <summary>Opens <paramref name="count"/> connections, numbered from <paramref name="first"/>, --connect-concurrency at a
    /// time; with <paramref name="subscribe"/> each subscribes to a destination of its own and waits for the RECEIPT. With
    /// <paramref name="tolerate"/> a connection that fails is left out and passed to <paramref name="failed"/> (idle counts
    /// what held); without, the first failure disposes the others and fails the run.</summary>
    internal static async Task<List<LoadConnection>> ConnectManyAsync(LoadOptions o, int count, Func<int, Task<string?>> token, CancellationToken cancellationToken,
        bool subscribe = false, bool tolerate = false, Func<int, Uri>? url = null, int first = 0, Action<Exception>? failed = null)
    {
        url ??= o.UrlFor;
        var result = new LoadConnection?[count];
        try
        {
            await Parallel.ForEachAsync(Enumerable.Range(first, count), new ParallelOptions { MaxDegreeOfParallelism = o.ConnectConcurrency, CancellationToken = cancellationToken }, async (i, ct) =>
            {
                LoadConnection? connection = null;
                try
                {
                    connection = await LoadConnection.ConnectAsync(o, url(i), await token(i), ct);
                    if (subscribe) await connection.SubscribeAsync($"{o.Prefix}.idle{i}", "i", ct);
                    result[i - first] = connection;
                }
                catch (Exception ex) when (tolerate && !ct.IsCancellationRequested)
                {
                    failed?.Invoke(ex);
                    if (connection is not null) await connection.DisposeAsync();
                }
            });
        }
        catch
        {
            await DisposeAllAsync(result.OfType<LoadConnection>());
            throw;
        }
        return [.. result.OfType<LoadConnection>()];
    }

    internal static async Task DisposeAllAsync(IEnumerable<LoadConnection> connections) =>
        await Parallel.ForEachAsync(connections, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (c, _) => await c.DisposeAsync());

    internal static ScenarioResult Result(LoadOptions o, RunStats stats, int connections, long lost, IReadOnlyDictionary<string, double>? extra = null)
    {
        // rate: deliveries over the offered window (--duration), not the drain after it; the others: the time measured.
        var seconds = o.Scenario == "rate" ? Math.Min(stats.ElapsedMeasuredSeconds, o.Duration.TotalSeconds)
            : o.Scenario is "fanout" or "idle" ? Math.Max(stats.ElapsedMeasuredSeconds, 0.001)
            : Math.Min(stats.ElapsedMeasuredSeconds, o.Duration.TotalSeconds + 1);
        var (p50, p90, p99, p999, max, mean) = stats.LatencyMs();
        return new ScenarioResult(o.Scenario, string.IsNullOrEmpty(o.Label) ? o.Url.ToString() : o.Label, o.Url.ToString(), connections,
            Math.Round(seconds, 3), stats.Sent, stats.Received, Math.Round(stats.Received / Math.Max(seconds, 0.001), 1),
            p50, p90, p99, p999, max, Math.Round(mean, 3), lost, stats.Errors, extra ?? new Dictionary<string, double>(),
            stats.PerSecond((int)Math.Ceiling(seconds)))
        { Urls = [.. o.Urls.Select(u => u.ToString())], Cross = o.Cross };
    }

    /// <summary>Where tokens come from: --token for all, or the broker's dev-token endpoint per demo user (cached).</summary>
    internal sealed class TokenSource(LoadOptions o)
    {
        private readonly ConcurrentDictionary<string, Task<string?>> _cache = new();

        public Task<string?> ForAsync(string user) => o.Token is not null ? Task.FromResult<string?>(o.Token)
            : !o.DevTokens ? Task.FromResult<string?>(null)
            : _cache.GetOrAdd(user, FetchAsync);

        /// <summary>From the first URL's node, or the next one's when it does not answer (a cluster's nodes share the
        /// signing key, so a token from one is good on all).</summary>
        private async Task<string?> FetchAsync(string user)
        {
            for (var i = 0; ; i++)
            {
                try
                {
                    using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
                    using var response = await client.PostAsJsonAsync(new Uri(HttpBase(o.Urls[i]), "/api/dev/token"), new { userId = user });
                    response.EnsureSuccessStatusCode();
                    var body = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
                    return body.GetProperty("token").GetString();
                }
                catch (HttpRequestException) when (i + 1 < o.Urls.Count) { }
            }
        }
    }

    /// <summary>The http(s) base of a broker's ws(s) URL, for its REST API, /metrics and /healthz.</summary>
    internal static Uri HttpBase(Uri ws) => new((ws.Scheme == "wss" ? "https" : "http") + "://" + ws.Authority + "/");
}
