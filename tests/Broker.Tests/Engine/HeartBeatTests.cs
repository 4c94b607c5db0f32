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
        var silent = System.Diagnostics.Stopwatch.StartNew();       // before the broker reads the CONNECT, its last word
        await using var client = await broker.ConnectAsync("beats", heartBeat: "1000,100");
        // The client promised a beat every second and sends none: after 2 s of silence (twice the promise), not 1, the
        // server gives up. Meanwhile it beats every 100 ms. The latest close leaves room for a pause of the test host (a
        // full GC after 180 brokers).
        var frames = await client.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(6));
        Assert.InRange(silent.Elapsed, TimeSpan.FromMilliseconds(1950), TimeSpan.FromMilliseconds(4500));
        Assert.True(client.HeartBeatsReceived >= 5, $"server heart-beats: {client.HeartBeatsReceived}");
        Assert.Equal("heart-beat timeout", Assert.Single(frames).Headers["message"]);
    }

    [Fact]
    public async Task HeartBeat_BeatingClient_StaysConnected()
    {
        // The client promises a beat every 2 s (silence allowed: 4 s) and beats every 2.5 s, later than it promised but
        // within what is allowed, for 7.5 s: longer than the allowed silence, with 1.5 s of room for a pause of the test host.
        await using var broker = await TestBroker.StartAsync("Broker:HeartBeatSendMs=100", "Broker:HeartBeatReceiveMs=2000");
        await using var client = await broker.ConnectAsync("beats", heartBeat: "2000,100");
        for (var i = 0; i < 3; i++)
        {
            await Task.Delay(2500);
            await client.SendAsync("\n");
        }
        await client.SendAsync("SEND\ndestination:/topic/x\nreceipt:alive\n\n\0");
        Assert.Equal("alive", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
    }
}
