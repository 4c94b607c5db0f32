namespace WsBroker.Broker.Sessions;

/// <summary>Graceful shutdown: runs in the "stopping" phase, before any hosted service (Kestrel included) stops: tells every
/// client, flushes what is queued, closes; Kestrel then finds the WebSocket requests finished.</summary>
public sealed class ShutdownCoordinator(BrokerServices services) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) =>
        services.Sessions.ShutdownAsync(TimeSpan.FromMilliseconds(services.Options.ShutdownTimeoutMs));

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
