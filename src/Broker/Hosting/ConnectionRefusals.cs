using System.Diagnostics.Metrics;
using WsBroker.Broker.Diagnostics;

namespace WsBroker.Broker.Hosting;

/// <summary>
/// Connections refused for want of room (<see cref="ConnectionLimits"/>): WebSocket upgrades answered 503 here, and HTTP
/// connections closed at once past their share (by the pipeline transport's endpoint, or by Kestrel: read from its own
/// <c>kestrel.rejected_connections</c> instrument). Both are counted in <c>wsbroker_connections_refused_total{reason}</c> and logged at most once per
/// <see cref="LogInterval"/>, with the count since the last line (a flood's tail at most an interval and a half after the
/// line before it, or at stop): a flood of connections must not become a flood of logs.
/// </summary>
public sealed partial class ConnectionRefusals : IHostedService, IDisposable
{
    /// <summary>At most one log line per interval.</summary>
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private const string KestrelMeter = "Microsoft.AspNetCore.Server.Kestrel";
    private readonly ILogger<ConnectionRefusals> _logger;
    private readonly Counter<long> _refused;
    private readonly KeyValuePair<string, object?> _webSocketTag = new("reason", "websocket_limit");
    private readonly KeyValuePair<string, object?> _httpTag = new("reason", "http_limit");
    private readonly MeterListener _listener = new();
    private long _webSockets;
    private long _http;
    private long _lastLog;
    private Timer? _flush;

    public ConnectionRefusals(BrokerMetrics metrics, ILogger<ConnectionRefusals> logger)
    {
        _logger = logger;
        _refused = metrics.Meter.CreateCounter<long>("wsbroker_connections_refused", "{connection}",
            "Connections refused because the broker holds as many as its open-file limit allows, by reason.");
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == KestrelMeter && instrument.Name == "kestrel.rejected_connections") listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => HttpRefused(value));
    }

    /// <summary>A WebSocket upgrade was answered 503.</summary>
    public void WebSocketRefused()
    {
        Interlocked.Increment(ref _webSockets);
        _refused.Add(1, _webSocketTag);
        LogNowAndThen();
    }

    /// <summary>A connection was closed at once: the HTTP share was full (the pipeline transport's own count, see
    /// <c>PipelineWebSocketEndpoint</c>; Kestrel's refusals come through its instrument).</summary>
    public void HttpRefused() => HttpRefused(1);

    private void HttpRefused(long count)
    {
        Interlocked.Add(ref _http, count);
        _refused.Add(count, _httpTag);
        LogNowAndThen();
    }

    private void LogNowAndThen()
    {
        var now = Environment.TickCount64;
        var last = Volatile.Read(ref _lastLog);
        if (last != 0 && now - last < (long)LogInterval.TotalMilliseconds) return;
        if (Interlocked.CompareExchange(ref _lastLog, now, last) != last) return;
        LogUnlogged();
    }

    private void LogUnlogged()
    {
        var (webSockets, http) = (Interlocked.Exchange(ref _webSockets, 0), Interlocked.Exchange(ref _http, 0));
        if (webSockets != 0 || http != 0) Log.Refused(_logger, webSockets, http);
    }

    // What came since the last line, once the interval allows a line: the tail of a flood is logged too, not only when the
    // next refusal comes.
    private void Flush()
    {
        if (Volatile.Read(ref _webSockets) != 0 || Volatile.Read(ref _http) != 0) LogNowAndThen();
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _listener.Start();
        _flush = new Timer(static state => ((ConnectionRefusals)state!).Flush(), this, LogInterval / 2, LogInterval / 2);
        return Task.CompletedTask;
    }

    /// <summary>Logs what is left unlogged, whatever the interval: the last line of a run.</summary>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        _flush?.Dispose();
        LogUnlogged();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _flush?.Dispose();
        _listener.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "connections refused, the broker is full (see wsbroker_connections_refused_total): {WebSockets} WebSocket upgrades answered 503 and {Http} connections closed at once since the last such line")]
        public static partial void Refused(ILogger logger, long webSockets, long http);
    }
}
