using WsBroker.Broker.Diagnostics;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>The store's numbers on the broker's meter: commit latency (each group commit) and the write-behind queue
/// depth (read at each collection). Hooked when the host starts, once the stores are open.</summary>
public sealed class PersistenceMetrics(BrokerMetrics metrics, PersistenceStores stores) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        stores.Committed += metrics.CommitObserved;
        metrics.ObserveGauge("wsbroker_persistence_queue_depth", () => stores.Messages.QueueDepth, "{message}",
            "Chat messages waiting for their commit.");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        stores.Committed -= metrics.CommitObserved;
        return Task.CompletedTask;
    }
}
