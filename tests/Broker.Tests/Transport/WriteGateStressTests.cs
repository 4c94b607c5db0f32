namespace WsBroker.Broker.Tests.Transport;

/// <summary>The write gate under a stress of its own, in a collection that runs alone: for up to 4 s each round blocks two
/// pool threads at a barrier, which beside other suites starves the brokers running in the tests' process.</summary>
[Collection(Engine.TimingCollection.Name)]
public sealed class WriteGateStressTests
{
    [Fact]
    public async Task WriteGate_TwoWaitingWhileAThirdHoldsIt_BothGetThrough()
    {
        // The writer loop and the read side's pong wait while a heart-beat holds the gate. A wake-up lost between the holder
        // leaving and the first waiter entering left the second waiting for good. The window is a few instructions wide:
        // many rounds, each bounded.
        var peer = new WebSocketPeer();
        var gate = peer.Server;
        var deadline = Environment.TickCount64 + 4_000;
        for (var round = 0; round < 200_000 && Environment.TickCount64 < deadline; round++)
        {
            Assert.True(gate.TryEnterWrite());
            var start = new Barrier(3);
            var waiters = new Task[2];
            for (var i = 0; i < 2; i++)
            {
                waiters[i] = Task.Run(async () =>
                {
                    start.SignalAndWait();
                    await gate.EnterWriteAsync(CancellationToken.None);
                    gate.ExitWrite();
                });
            }
            start.SignalAndWait();
            Thread.SpinWait(round % 64);
            gate.ExitWrite();
            var both = Task.WhenAll(waiters);
            if (await Task.WhenAny(both, Task.Delay(WebSocketPeer.Timeout)) != both) Assert.Fail($"a waiter never got through in round {round}");
        }
    }
}
