using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Hosting;

/// <summary>
/// How many connections this process can hold (docs/design.md §3 "Heart-beating and limits"). Every connection is a file
/// descriptor, and when accept finds none left Kestrel's accept loop spins until the process dies of memory, so the broker
/// never lets it get there. At start the soft open-file limit is raised to the hard one. From it go the descriptors already
/// open (the runtime's own files, logs, the database) and a reserve (<see cref="Reserve"/>: the database pool, the bus,
/// files opened later). What is left is split: a small share for HTTP connections (REST, health, metrics, and WebSocket
/// handshakes in progress; Kestrel closes one past it at once) and the rest for WebSockets (an upgrade past it is answered
/// 503). <c>Broker:MaxConnections</c> sets the WebSocket share instead.
/// </summary>
public sealed partial record ConnectionLimits(long SoftBefore, long Soft, long Hard, int OpenAtStart, int WebSockets, int Http)
{
    /// <summary>Descriptors kept free beyond those open at start.</summary>
    public const int Reserve = 256;

    /// <summary>Kestrel's limit on upgraded connections is the WebSocket share plus this much: the endpoint's own check
    /// (503 with a problem body) comes first, Kestrel's (an exception) only catches a burst of upgrades racing past it.</summary>
    public const int UpgradeSlack = 64;

    // Without a known limit (not Linux, or unlimited) the shares are bounded by these.
    private const int Unbounded = 1_000_000;

    /// <summary>Raises the soft limit and derives the shares; logs both limits and the shares.</summary>
    public static ConnectionLimits Compute(BrokerOptions options, ILogger logger)
    {
        var (before, soft, hard) = RaiseFileLimit();
        var open = CountOpenFiles();
        var (webSockets, http, enough) = Shares(soft, open, options.MaxConnections);
        Log.Limits(logger, before, soft, hard, open, webSockets, http);
        if (!enough) Log.TooFew(logger, soft, (long)webSockets + http + open + Reserve);
        return new ConnectionLimits(before, soft, hard, open, webSockets, http);
    }

    /// <summary>The WebSocket and HTTP shares of a soft limit <paramref name="soft"/> (-1: unknown) with
    /// <paramref name="open"/> descriptors open, and whether the limit is enough for them.</summary>
    internal static (int WebSockets, int Http, bool Enough) Shares(long soft, int open, int maxConnections)
    {
        // A huge limit is bounded, but what is open and the reserve still come off it (a limit of 1,000,000 is common).
        var budget = soft > 0 ? (int)Math.Min(Math.Max(0, soft - open - Reserve), Unbounded) : Unbounded;
        var http = Math.Clamp(budget / 20, 16, 400);
        var webSockets = maxConnections > 0 ? maxConnections : Math.Max(1, budget - http);
        // Enough is judged on the limit itself, not on the bounded budget: a share past a million may well fit a larger limit.
        return (webSockets, http, soft <= 0 || soft - open - Reserve - http >= webSockets);
    }

    /// <summary>Kestrel's share of the limits: HTTP connections, upgraded ones, and how long a connection may wait for
    /// its first request or between requests and take to send a request's headers (<c>Broker:ConnectTimeoutMs</c>: a
    /// socket that connects and says nothing holds a descriptor no longer than a WebSocket that never sends CONNECT).
    /// <para>With <c>Broker:Transport=Pipeline</c> the endpoint in front of the HTTP layer counts the HTTP share itself
    /// (<c>PipelineWebSocketEndpoint</c>), as Kestrel would: Kestrel's count is an async frame around every connection for
    /// its whole life, upgraded or not (136 bytes of every idle WebSocket).</para></summary>
    public void ApplyTo(KestrelServerOptions kestrel, BrokerOptions options)
    {
        kestrel.Limits.MaxConcurrentConnections = options.Transport == BrokerTransport.Pipeline ? null : Http;
        kestrel.Limits.MaxConcurrentUpgradedConnections = WebSockets + UpgradeSlack;
        kestrel.Limits.KeepAliveTimeout = TimeSpan.FromMilliseconds(options.ConnectTimeoutMs);
        kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromMilliseconds(options.ConnectTimeoutMs);
    }

    /// <summary>The soft open-file limit before, after raising it to the hard limit, and the hard limit (-1: unknown).</summary>
    internal static (long Before, long Soft, long Hard) RaiseFileLimit()
    {
        if (!OperatingSystem.IsLinux()) return (-1, -1, -1);
        if (getrlimit(RlimitNoFile, out var limit) != 0) return (-1, -1, -1);
        var before = Clamp(limit.Current);
        if (limit.Current < limit.Maximum)
        {
            var raised = new RLimit { Current = limit.Maximum, Maximum = limit.Maximum };
            if (setrlimit(RlimitNoFile, ref raised) == 0) limit = raised;
        }
        return (before, Clamp(limit.Current), Clamp(limit.Maximum));
    }

    /// <summary>Descriptors open in this process now (0 where /proc is not there).</summary>
    internal static int CountOpenFiles()
    {
        try
        {
            return Directory.Exists("/proc/self/fd") ? Directory.GetFileSystemEntries("/proc/self/fd").Length : 0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static long Clamp(ulong value) => value > long.MaxValue ? long.MaxValue : (long)value;

    private const int RlimitNoFile = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, ref RLimit limit);

    private static partial class Log
    {
        [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "open files: soft limit {Before} raised to {Soft} (hard limit {Hard}), {Open} open at start; connections: {WebSockets} WebSockets, {Http} HTTP (Broker:MaxConnections overrides the first)")]
        public static partial void Limits(ILogger logger, long before, long soft, long hard, int open, int webSockets, int http);

        [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "open files: the limit {Soft} is below the {Needed} these connection limits need; raise it (ulimit -n, docker-compose ulimits: nofile) or lower Broker:MaxConnections, or accept may run out of descriptors")]
        public static partial void TooFew(ILogger logger, long soft, long needed);
    }
}
