using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>An in-memory transport of which a test changes one part (a send held, a keep-alive that throws, a slow
/// finish); everything else is <see cref="Inner"/>'s.</summary>
internal abstract class WrappedTransport : IConnectionTransport
{
    public InMemoryTransport Inner { get; } = new();

    public ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken) => Inner.ReadAsync(cancellationToken);

    public void AdvanceTo(SequencePosition consumed) => Inner.AdvanceTo(consumed);

    public virtual ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken) =>
        Inner.SendAsync(message, binary, cancellationToken);

    public ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken) => Inner.CloseAsync(reason, cancellationToken);

    public virtual Task FinishAsync(TimeSpan timeout) => Task.CompletedTask;

    public virtual void KeepAlive(long nowMs) { }

    public virtual void Abort() => Inner.Abort();
}
