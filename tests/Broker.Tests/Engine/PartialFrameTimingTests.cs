using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Engine;

/// <summary>The partial-frame clock with frames that do complete, in a collection that runs alone: the client sends a
/// piece every 100 ms, and beside other suites a starved thread pool (the broker runs in the tests' process) once held it
/// back past the timeout in CI.</summary>
[Collection(TimingCollection.Name)]
public sealed class PartialFrameTimingTests
{
    [Fact]
    public async Task StreamEndingMidFrameEveryTime_KeepsTheConnection_WhileFramesComplete()
    {
        // Every WebSocket message ends inside the next frame, for three times the partial-frame timeout: each frame
        // completes within 100 ms, so the timeout (per frame, not per connection) never fires.
        await using var broker = await TestBroker.StartAsync("Broker:PartialFrameTimeoutMs=2500");
        await using var client = await broker.ConnectAsync("stream");
        const string frame = "SEND\ndestination:/topic/stream\nreceipt:r{0}\n\nbody\0";
        var carry = "";
        for (var i = 0; i < 80; i++)
        {
            var next = string.Format(System.Globalization.CultureInfo.InvariantCulture, frame, i);
            await client.SendAsync(carry + next[..10]);
            carry = next[10..];
            await Task.Delay(100);
        }
        await client.SendAsync(carry);
        for (var i = 0; i < 80; i++)
            Assert.Equal($"r{i}", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
    }
}
