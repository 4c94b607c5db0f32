using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>An in-memory transport whose sends can be held: a held send is a client that stopped reading (its socket send
/// does not complete). <see cref="SendEntered"/> tells a test that the writer is inside a held send.</summary>
internal sealed class HeldSendTransport : WrappedTransport
{
    private TaskCompletionSource? _held;

    public TaskCompletionSource SendEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Hold() => Volatile.Write(ref _held, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public void Release() => Interlocked.Exchange(ref _held, null)?.TrySetResult();

    /// <summary>Lets the held send go, and holds the next one: in one step, so the writer cannot slip a send in between.</summary>
    public void ReleaseAndHoldNext() =>
        Interlocked.Exchange(ref _held, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously))?.TrySetResult();

    public override async ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _held) is { } held)
        {
            SendEntered.TrySetResult();
            await held.Task.WaitAsync(cancellationToken);
        }
        await Inner.SendAsync(message, binary, cancellationToken);
    }

    public override void Abort()
    {
        Release();
        Inner.Abort();
    }
}
