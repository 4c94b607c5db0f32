using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Engine;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "timing";
}

/// <summary>Heart-beat timing, in a collection that runs alone: with other suites' connections competing for the two
/// cores, a starved read loop could miss the margins and fail a correct broker.</summary>
[Collection(TimingCollection.Name)]
public sealed class HeartBeatTests
{
    [Fact]
    public async Task HeartBeat_ServerBeats_AndSilentClientIsClosed()
    {
        await using var broker = await TestBroker.StartAsync("Broker:HeartBeatSendMs=100", "Broker:HeartBeatReceiveMs=1000");
        await using var client = await broker.ConnectAsync("beats", heartBeat: "1000,100");
        var silent = System.Diagnostics.Stopwatch.StartNew();
        // The client promised a beat every second and sends none: after 2 s of silence (twice the promise), not 1, the
        // server gives up. Meanwhile it beats every 100 ms. The latest close leaves room for a pause of the test host (a
        // full GC after 180 brokers); the earliest, a little for the CONNECT read before the CONNECTED the client waited for.
        var frames = await client.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(6));
        Assert.InRange(silent.Elapsed, TimeSpan.FromMilliseconds(1900), TimeSpan.FromMilliseconds(4500));
        Assert.True(client.HeartBeatsReceived >= 5, $"server heart-beats: {client.HeartBeatsReceived}");
        Assert.Equal("heart-beat timeout", Assert.Single(frames).Headers["message"]);
    }

    [Fact]
    public async Task HeartBeat_BeatingClient_StaysConnected()
    {
        // The client promises a beat every second (silence allowed: 2 s) and beats every 1.3 s, later than it promised but
        // within what is allowed, for 5.2 s: longer than the allowed silence, with 0.7 s of room for a pause of the test host.
        await using var broker = await TestBroker.StartAsync("Broker:HeartBeatSendMs=100", "Broker:HeartBeatReceiveMs=1000");
        await using var client = await broker.ConnectAsync("beats", heartBeat: "1000,100");
        for (var i = 0; i < 4; i++)
        {
            await Task.Delay(1300);
            await client.SendAsync("\n");
        }
        await client.SendAsync("SEND\ndestination:/topic/x\nreceipt:alive\n\n\0");
        Assert.Equal("alive", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
    }
}
