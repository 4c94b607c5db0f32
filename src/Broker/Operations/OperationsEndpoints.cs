using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Operations;

/// <summary>
/// <c>/healthz</c> (alive), <c>/readyz</c> (every health check tagged <see cref="ReadyTag"/> that a part registered),
/// <c>/metrics</c> (the <c>WsBroker</c> meter through the OpenTelemetry Prometheus exporter).
/// </summary>
public static class OperationsEndpoints
{
    /// <summary>The tag of the health checks <c>/readyz</c> runs: a part registers its own with
    /// <c>services.AddHealthChecks().AddCheck&lt;T&gt;(name, tags: [ReadyTag])</c>; its name is a property of the body.</summary>
    public const string ReadyTag = "ready";

    public static void Map(WebApplication app)
    {
        app.MapGet("/healthz", () => Results.Ok(new { status = "alive" }));
        app.MapHealthChecks("/readyz", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(ReadyTag),
            ResponseWriter = WriteReadinessAsync,
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status503ServiceUnavailable,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
        });
        app.MapPrometheusScrapingEndpoint("/metrics");
        if (app.Services.GetRequiredService<IOptions<BrokerOptions>>().Value.DiagnosticsEndpoints)
        {
            app.MapPost("/debug/gc", () =>
            {
                var before = GC.GetTotalMemory(forceFullCollection: false);
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                return Results.Ok(new { heapBefore = before, heapAfter = GC.GetTotalMemory(false), workingSet = Environment.WorkingSet, allocatedTotal = GC.GetTotalAllocatedBytes(precise: true) });
            });
        }
    }

    // {"status":"ready"|"not ready", "<check>":"up"|"down", …}: one property per registered readiness check.
    private static async Task WriteReadinessAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        json.WriteStartObject();
        json.WriteString("status", report.Status == HealthStatus.Healthy ? "ready" : "not ready");
        foreach (var (name, entry) in report.Entries) json.WriteString(name, entry.Status == HealthStatus.Healthy ? "up" : "down");
        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted);
    }
}
