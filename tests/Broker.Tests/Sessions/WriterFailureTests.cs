using WsBroker.Broker.Options;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>The writer runs detached (nobody awaits its task while it waits for work): when a send fails with something
/// no transport is expected to throw, the session must still end, not wait for the writer forever.</summary>
public sealed class WriterFailureTests
{
    [Fact]
    public async Task A_send_that_throws_something_unexpected_ends_the_session()
    {
        var transport = new ThrowingSendTransport();
        var services = SessionServices.Create(new BrokerOptions { ShutdownTimeoutMs = 1000 }, "writer-failure-tests-signing-key-0123456789");
        var session = new StompSession(transport, services, "s1", null);
        var run = session.RunAsync();
        // No token: the answer is an ERROR, and its send throws.
        await transport.Inner.Client.WriteAsync("CONNECT\naccept-version:1.2\nhost:h\n\n\0"u8.ToArray());
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(transport.Sends >= 1, "the writer tried to send");
        Assert.Equal(0, services.Sessions.Count);                      // and the session was released
    }

    private sealed class ThrowingSendTransport : IConnectionTransport
    {
        private int _sends;

        public InMemoryTransport Inner { get; } = new();

        public int Sends => Volatile.Read(ref _sends);

        public ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken) => Inner.ReadAsync(cancellationToken);

        public void AdvanceTo(SequencePosition consumed) => Inner.AdvanceTo(consumed);

        public ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _sends);
            throw new NotSupportedException("a send no transport should fail with");
        }

        public ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken) => Inner.CloseAsync(reason, cancellationToken);

        public void KeepAlive(long nowMs) { }

        public void Abort() => Inner.Abort();
    }
}
