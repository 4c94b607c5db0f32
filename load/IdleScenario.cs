using System.Diagnostics;
using WsBroker.Protocol;

namespace WsBroker.Load;

/// <summary>The end of an idle holder's connect phase: how many connected (upgrade + CONNECT + SUBSCRIBE with RECEIPT) and
/// failed, from when to when (Stopwatch ticks: CLOCK_MONOTONIC, the same clock in every process of the machine), and the
/// first failure's message.</summary>
internal sealed record IdleUp(int Connected, int Failed, long StartTicks, long EndTicks, string? FirstError);

/// <summary>What an idle holder has after the hold: connections still open, closed by the broker, ERROR frames, heart-beats
/// sent and received, and the negotiated send interval (ms).</summary>
internal sealed record IdleHeld(int Open, int ClosedByBroker, long Errors, long HeartBeatsSent, long HeartBeatsReceived, int HeartBeatSendMs)
{
    public static IdleHeld None { get; } = new(0, 0, 0, 0, 0, 0);
}

/// <summary>A share of an idle run's connections: held in this process (<see cref="IdleConnections"/>) or by a child
/// process of the tool (<see cref="ChildProcess"/>).</summary>
internal interface IIdleHolder : IAsyncDisposable
{
    Task<IdleUp> ConnectAsync(CancellationToken cancellationToken);

    Task<IdleHeld> CountAsync(CancellationToken cancellationToken);
}

/// <summary>Idle connections held in this process: connections <c>first</c> .. <c>first + count - 1</c> of the run, each
/// subscribed to a destination of its own, every socket read so that a close by the broker is seen.</summary>
internal sealed class IdleConnections(LoadOptions o, int first, int count) : IIdleHolder
{
    private readonly CancellationTokenSource _stop = new();
    private readonly long _heartBeatsSentBefore = HeartBeats.Sent;
    private List<LoadConnection> _connections = [];
    private List<Task> _loops = [];
    private long _errors;

    public async Task<IdleUp> ConnectAsync(CancellationToken cancellationToken)
    {
        var tokens = new Scenarios.TokenSource(o);
        string User(int i) => "client" + (i % 3 + 1);
        foreach (var user in Enumerable.Range(0, 3).Select(User)) await tokens.ForAsync(user);   // fetched before the clock starts
        string? firstError = null;
        var start = Stopwatch.GetTimestamp();
        _connections = await Scenarios.ConnectManyAsync(o, count, i => tokens.ForAsync(User(i)), cancellationToken, subscribe: true, tolerate: true,
            first: first, failed: ex => Interlocked.CompareExchange(ref firstError, ex.Message, null));
        var end = Stopwatch.GetTimestamp();
        _loops = [.. _connections.Select(c => c.ReceiveLoopAsync(frame =>
        {
            if (frame.Command == StompCommand.Error) Interlocked.Increment(ref _errors);
        }, _stop.Token))];
        return new IdleUp(_connections.Count, count - _connections.Count, start, end, firstError);
    }

    public Task<IdleHeld> CountAsync(CancellationToken cancellationToken) => Task.FromResult(new IdleHeld(
        _connections.Count(c => c.IsOpen), _connections.Count(c => c.ClosedByBroker), Interlocked.Read(ref _errors),
        HeartBeats.Sent - _heartBeatsSentBefore, _connections.Sum(c => (long)c.HeartBeatsReceived),
        _connections.Select(c => c.HeartBeatSendMs).DefaultIfEmpty(0).Max()));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();                                     // (cancelling a receive aborts its socket)
        await Scenarios.SettledAsync(_loops);
        await Scenarios.DisposeAllAsync(_connections);
        _stop.Dispose();
    }
}

/// <summary>
/// idle: C connections with one subscription each, held for --duration, from this process or from --processes children.
/// The parent measures: the broker's live heap (--gc-url) and RSS (--pid) before, the connect phase, RSS with all up, the
/// broker's CPU over the hold (--pid), then how many each holder still holds, and the heap and RSS again.
/// </summary>
internal static class IdleScenario
{
    /// <summary>Descriptors a process of the tool needs besides its connections (runtime files, epoll, pipes, HTTP).</summary>
    internal const int FilesReserve = 200;

    public static async Task<ScenarioResult> RunAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        CheckFileLimit((o.Connections + o.Processes - 1) / o.Processes,
            limit => $"use --processes {(int)Math.Ceiling(o.Connections / (double)Math.Max(1, limit - FilesReserve))} or more");
        var heapBefore = o.GcUrl is null ? 0 : await ProcessProbe.ForceGcAsync(o.GcUrl);
        var rssBefore = o.Pid is { } pid ? ProcessProbe.ResidentBytes(pid) : 0;
        var holders = o.Processes == 1 ? [new IdleConnections(o, 0, o.Connections)] : await ChildProcess.StartAllAsync(o, cancellationToken);
        try
        {
            var ups = await Task.WhenAll(holders.Select(h => h.ConnectAsync(cancellationToken)));
            stats.Start(TimeSpan.Zero);
            var rssUp = o.Pid is { } p1 ? ProcessProbe.ResidentBytes(p1) : 0;
            var cpuBefore = o.Pid is { } p2 ? ProcessProbe.CpuSeconds(p2) : 0;
            var hold = Stopwatch.StartNew();
            await Task.Delay(o.Duration, cancellationToken);
            var cpu = o.Pid is { } p3 ? ProcessProbe.CpuSeconds(p3) - cpuBefore : 0;
            var holdSeconds = hold.Elapsed.TotalSeconds;
            var helds = await Task.WhenAll(holders.Select(h => h.CountAsync(cancellationToken)));
            var held = helds.Sum(h => h.Open);
            stats.CountErrors(helds.Sum(h => h.Errors));
            var extra = Extra(o, ups, helds, holders);
            if (o.GcUrl is not null)
            {
                var heapAfter = await ProcessProbe.ForceGcAsync(o.GcUrl);
                extra["heap_bytes_per_connection"] = held == 0 ? 0 : (heapAfter - heapBefore) / (double)held;
            }
            if (o.Pid is { } p4)
            {
                var rssAfter = ProcessProbe.ResidentBytes(p4);
                extra["rss_before_mib"] = rssBefore / 1048576.0;
                extra["rss_up_mib"] = rssUp / 1048576.0;
                extra["rss_after_mib"] = rssAfter / 1048576.0;
                extra["bytes_per_connection"] = held == 0 ? 0 : (rssAfter - rssBefore) / (double)held;
                extra["broker_cpu_cores"] = Math.Round(cpu / holdSeconds, 4);
                extra["broker_cpu_pct_of_core"] = Math.Round(100 * cpu / holdSeconds, 2);
            }
            foreach (var error in ups.Select(u => u.FirstError).OfType<string>().Distinct().Take(3))
                Console.Error.WriteLine($"wsbroker-load: idle: a connection failed: {error}");
            return Scenarios.Result(o, stats, held, lost: o.Connections - held, extra);
        }
        finally
        {
            await Task.WhenAll(holders.Select(h => h.DisposeAsync().AsTask()));
        }
    }

    /// <summary>held/requested, the connect phase (from the first holder's start to the last one's end), what the broker
    /// closed, heart-beats, and the processes that took part.</summary>
    private static Dictionary<string, double> Extra(LoadOptions o, IdleUp[] ups, IdleHeld[] helds, IReadOnlyList<IIdleHolder> holders)
    {
        var connected = ups.Sum(u => u.Connected);
        var started = ups.Where(u => u.EndTicks > 0).ToList();
        var connectSeconds = started.Count == 0 ? 0 : (started.Max(u => u.EndTicks) - started.Min(u => u.StartTicks)) / (double)Stopwatch.Frequency;
        return new Dictionary<string, double>
        {
            ["held"] = helds.Sum(h => h.Open),
            ["requested"] = o.Connections,
            ["connected"] = connected,
            ["connect_failed"] = ups.Sum(u => u.Failed),
            ["connect_seconds"] = Math.Round(connectSeconds, 3),
            ["connect_per_second"] = connectSeconds <= 0 ? 0 : Math.Round(connected / connectSeconds, 1),
            ["closed_by_broker"] = helds.Sum(h => h.ClosedByBroker),
            ["heart_beat_send_ms"] = helds.Max(h => h.HeartBeatSendMs),
            ["heart_beats_sent"] = helds.Sum(h => h.HeartBeatsSent),
            ["heart_beats_received"] = helds.Sum(h => h.HeartBeatsReceived),
            ["processes"] = o.Processes,
            ["source_addresses"] = o.SourceAddresses,
            ["processes_failed"] = holders.OfType<ChildProcess>().Count(c => c.Failure is not null),
        };
    }

    /// <summary>Every process of the tool may open as many files as its soft limit (raised to the hard one here; children
    /// inherit it): a share that cannot fit fails the run at once rather than with thousands of failed connections.</summary>
    internal static void CheckFileLimit(int perProcess, Func<long, string> remedy)
    {
        var limit = ProcessProbe.RaiseOpenFileLimit();
        if (limit > 0 && perProcess + FilesReserve > limit)
            throw new InvalidOperationException($"{perProcess} connections in one process need more than its open-file limit {limit} allows "
                + $"(ulimit -n; {FilesReserve} kept for the rest): {remedy(limit)}");
    }
}
