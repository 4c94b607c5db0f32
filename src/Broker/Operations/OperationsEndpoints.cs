using System.Globalization;
using System.Text;
using MassTransit;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Broker.Routing;
using WsBroker.Persistence;
using WsBroker.Protocol;

namespace WsBroker.Broker.Operations;

/// <summary><c>/healthz</c> (alive), <c>/readyz</c> (database and bus reachable), <c>/metrics</c> (Prometheus text format).</summary>
public static class OperationsEndpoints
{
    public static void Map(WebApplication app)
    {
        app.MapGet("/healthz", () => Results.Ok(new { status = "alive" }));
        app.MapGet("/readyz", ReadyAsync);
        app.MapGet("/metrics", Metrics);
        if (app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Options.BrokerOptions>>().Value.DiagnosticsEndpoints)
        {
            app.MapPost("/debug/gc", () =>
            {
                var before = GC.GetTotalMemory(forceFullCollection: false);
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                return Results.Ok(new { heapBefore = before, heapAfter = GC.GetTotalMemory(false), workingSet = Environment.WorkingSet });
            });
        }
        // Commit latency and queue depth come from the store; hook them once the stores are open.
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var metrics = app.Services.GetRequiredService<BrokerMetrics>();
            app.Services.GetRequiredService<PersistenceStores>().Committed += metrics.CommitObserved;
        });
    }

    private static async Task<IResult> ReadyAsync(PersistenceStores stores, IBusControl bus, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        var database = await stores.PingAsync(timeout.Token);
        var busHealth = bus.CheckHealth();
        var busUp = busHealth.Status == BusHealthStatus.Healthy;
        var body = new { status = database && busUp ? "ready" : "not ready", database = database ? "up" : "down", bus = busUp ? "up" : "down" };
        return Results.Json(body, statusCode: database && busUp ? 200 : 503);
    }

    private static IResult Metrics(BrokerMetrics m, SessionRegistry sessions, TopicRouter router, IMessageStore messages)
    {
        var text = new StringBuilder(4096);
        void Metric(string name, string type, string help)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        }
        void Value(string name, double value, string? labels = null)
        {
            text.Append(name);
            if (labels is not null) text.Append('{').Append(labels).Append('}');
            text.Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        var all = sessions.All.ToList();
        Metric("process_resident_memory_bytes", "gauge", "Resident memory of the broker process.");
        Value("process_resident_memory_bytes", Environment.WorkingSet);
        Metric("dotnet_gc_heap_bytes", "gauge", "Managed heap size at the last garbage collection.");
        Value("dotnet_gc_heap_bytes", GC.GetGCMemoryInfo().HeapSizeBytes);
        Metric("wsbroker_connections", "gauge", "Open WebSocket connections.");
        Value("wsbroker_connections", all.Count);
        Metric("wsbroker_sessions", "gauge", "Authenticated sessions by protocol.");
        foreach (var protocol in new[] { "stomp", "raw" })
            Value("wsbroker_sessions", all.Count(c => c.IsAuthenticated && c.Protocol == protocol), $"protocol=\"{protocol}\"");
        Metric("wsbroker_connections_opened_total", "counter", "Connections accepted since start.");
        Value("wsbroker_connections_opened_total", m.ConnectionsOpened);
        Metric("wsbroker_subscriptions", "gauge", "Subscriptions in the router.");
        Value("wsbroker_subscriptions", router.Count);
        Metric("wsbroker_frames_in_total", "counter", "Frames received, by command.");
        foreach (var command in Enum.GetValues<StompCommand>().Where(c => c.IsClientCommand()))
            Value("wsbroker_frames_in_total", m.FramesInFor(command), $"command=\"{command.ToWireString()}\"");
        Metric("wsbroker_frames_out_total", "counter", "Frames sent, by command (a raw topic URL's JSON deliveries, receipts and errors as MESSAGE, RECEIPT, ERROR).");
        foreach (var command in new[] { StompCommand.Connected, StompCommand.Message, StompCommand.Receipt, StompCommand.Error })
            Value("wsbroker_frames_out_total", m.FramesOutFor(command), $"command=\"{command.ToWireString()}\"");
        Metric("wsbroker_bytes_in_total", "counter", "WebSocket payload bytes received.");
        Value("wsbroker_bytes_in_total", m.BytesIn);
        Metric("wsbroker_bytes_out_total", "counter", "WebSocket payload bytes sent.");
        Value("wsbroker_bytes_out_total", m.BytesOut);
        Metric("wsbroker_deliveries_total", "counter", "Messages queued to subscribers.");
        Value("wsbroker_deliveries_total", m.Deliveries);
        Metric("wsbroker_slow_consumer_disconnects_total", "counter", "Connections dropped because they did not read fast enough.");
        Value("wsbroker_slow_consumer_disconnects_total", m.SlowConsumerDisconnects);
        Metric("wsbroker_disconnects_total", "counter", "Ended connections by reason.");
        foreach (var reason in Enum.GetValues<DisconnectReason>())
            Value("wsbroker_disconnects_total", m.DisconnectsFor(reason), $"reason=\"{reason}\"");
        Metric("wsbroker_errors_total", "counter", "Errors by kind.");
        Value("wsbroker_errors_total", m.ProtocolErrors, "kind=\"protocol\"");
        Value("wsbroker_errors_total", m.AuthenticationFailures, "kind=\"authentication\"");
        Value("wsbroker_errors_total", m.Rejections, "kind=\"rejection\"");
        Metric("wsbroker_persistence_queue_depth", "gauge", "Chat messages waiting for their commit.");
        Value("wsbroker_persistence_queue_depth", messages.QueueDepth);
        Metric("wsbroker_persistence_commit_seconds", "histogram", "Duration of group commits.");
        var (cumulative, count, sum) = m.CommitHistogram();
        for (var i = 0; i < BrokerMetrics.s_commitBoundsMs.Length; i++)
            Value("wsbroker_persistence_commit_seconds_bucket", cumulative[i], $"le=\"{(BrokerMetrics.s_commitBoundsMs[i] / 1000).ToString(CultureInfo.InvariantCulture)}\"");
        Value("wsbroker_persistence_commit_seconds_bucket", cumulative[^1], "le=\"+Inf\"");
        Value("wsbroker_persistence_commit_seconds_sum", sum);
        Value("wsbroker_persistence_commit_seconds_count", count);
        return Results.Text(text.ToString(), "text/plain; version=0.0.4; charset=utf-8");
    }
}
