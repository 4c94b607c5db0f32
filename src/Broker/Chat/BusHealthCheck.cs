using MassTransit;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace WsBroker.Broker.Chat;

/// <summary>Readiness: the user-sync bus is connected (registered as <c>bus</c> by <see cref="BrokerApp.AddChat"/>).</summary>
public sealed class BusHealthCheck(IBusControl bus) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var health = bus.CheckHealth();
        return Task.FromResult(health.Status == BusHealthStatus.Healthy
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy(health.Description));
    }
}
