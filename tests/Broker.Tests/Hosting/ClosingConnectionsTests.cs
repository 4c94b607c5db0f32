using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using WsBroker.Broker.Hosting;
using WsBroker.Broker.Options;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Tests.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Hosting;

public sealed class ClosingConnectionsTests
{
    /// <summary>An in-memory transport whose last word (waiting for the client's close reply) lasts until the test says.</summary>
    private sealed class SlowToFinish : WrappedTransport
    {
        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Finishing { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Task FinishAsync(TimeSpan timeout)
        {
            Finishing.TrySetResult();
            return Finished.Task;
        }
    }

    private sealed class Running : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => CancellationToken.None;
        public CancellationToken ApplicationStopping => CancellationToken.None;
        public CancellationToken ApplicationStopped => CancellationToken.None;
        public void StopApplication() { }
    }

    [Fact]
    public async Task A_connection_still_closing_holds_its_place_until_its_transport_has_finished()
    {
        // Each holds a descriptor until then: admitting a new one in its place could take the node past its open-file limit.
        var services = SessionServices.Create(new BrokerOptions(), "closing-connections-key-0123456789abcdefghijk");
        var admission = new WebSocketAdmission(services, new Running(), new ConnectionLimits(-1, -1, -1, 0, WebSockets: 1, Http: 16),
            new ConnectionRefusals(SessionServices.Metrics(), NullLogger<ConnectionRefusals>.Instance));
        Assert.Null(admission.TryHold());
        var transport = new SlowToFinish();
        var run = new StompSession(transport, services, "s1", null).RunAsync();
        admission.Release();                                            // registered: the session holds the place now
        Assert.NotNull(admission.TryHold());

        await transport.Inner.Client.CompleteAsync();                   // the client leaves; its close reply is awaited
        await transport.Finishing.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, services.Sessions.Count);                       // out of the registry already
        Assert.NotNull(admission.TryHold());                            // and still no room

        transport.Finished.SetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, services.Sessions.Closing);
        Assert.Null(admission.TryHold());                               // its descriptor is given back: room again
    }
}
