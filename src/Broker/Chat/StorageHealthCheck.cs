using Microsoft.Extensions.Diagnostics.HealthChecks;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>Readiness: the chat's database answers a ping (registered as <c>database</c> by <see cref="BrokerApp.AddChat"/>).</summary>
public sealed class StorageHealthCheck(PersistenceStores stores) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await stores.PingAsync(cancellationToken) ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("the database does not answer");
}
