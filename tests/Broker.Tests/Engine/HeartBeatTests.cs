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
        await using var broker = await TestBroker.StartAsync("Broker:HeartBeatSendMs=100", "Broker:HeartBeatReceiveMs=400");
        await using var client = await broker.ConnectAsync("beats", heartBeat: "400,100");
        // The client promised a beat every 400 ms and sends none: after 2 × 400 ms of silence the server gives up.
        var frames = await client.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(5));
        Assert.True(client.HeartBeatsReceived >= 2, $"server heart-beats: {client.HeartBeatsReceived}");
        Assert.Equal("heart-beat timeout", Assert.Single(frames).Headers["message"]);
    }

    [Fact]
    public async Task HeartBeat_BeatingClient_StaysConnected()
    {
        // The client promises a beat every 300 ms (silence allowed: 600 ms) and beats every ~100 ms for over a second:
        // twice the allowed silence, with room for a loaded CI machine's scheduling.
        await using var broker = await TestBroker.StartAsync("Broker:HeartBeatSendMs=100", "Broker:HeartBeatReceiveMs=300");
        await using var client = await broker.ConnectAsync("beats", heartBeat: "300,100");
        for (var i = 0; i < 12; i++)
        {
            await client.SendAsync("\n");
            await Task.Delay(100);
        }
        await client.SendAsync("SEND\ndestination:/topic/x\nreceipt:alive\n\n\0");
        Assert.Equal("alive", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
    }
}
