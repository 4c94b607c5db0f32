using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;
using Xunit.Abstractions;

namespace WsBroker.Broker.Tests.Engine;

/// <summary>Publisher back-pressure over real WebSockets (docs/design.md §3): a burst never cuts a subscriber that reads;
/// a subscriber that stops reading is cut alone, by no progress or by the hard cap, and holds its publishers no longer.
/// They run alone (<see cref="TimingCollection"/>): their bursts would starve other suites' timing, and a rate compared
/// while other suites compete for the two cores would mean little.</summary>
[Collection(TimingCollection.Name)]
public sealed class BackPressureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task TenThousandSendsInOneMessage_ToASubscriberThatReads_AllArriveInOrder()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var subscriber = await broker.ConnectAsync("reader");
        await using var publisher = await broker.ConnectAsync("burster");
        await subscriber.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/burst\nreceipt:s\n\n\0");
        await subscriber.ReceiveAsync(StompCommand.Receipt);
        const int count = 10_000;
        var burst = new StringBuilder();
        for (var i = 0; i < count; i++) burst.Append(CultureInfo.InvariantCulture, $"SEND\ndestination:/topic/burst\n\n{i}\0");
        burst.Append("SEND\ndestination:/topic/none\nreceipt:all\n\n\0");
        await publisher.SendAsync(burst.ToString());                   // one WebSocket message
        for (var i = 0; i < count; i++)
        {
            var frame = await subscriber.ReceiveAsync(StompCommand.Message);
            Assert.Equal(i.ToString(CultureInfo.InvariantCulture), frame.BodyText);
        }
        Assert.Equal("all", (await publisher.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
        var sessions = broker.Services.GetRequiredService<SessionRegistry>();
        Assert.Equal(2, sessions.Count);
        Assert.All(sessions.All, s => Assert.Null(s.Reason));
    }

    [Fact]
    public async Task SubscriberOverHighWater_PausesThePublisher_UntilItDrains()
    {
        // Small marks, and no cut for a long time: the subscriber is only slow, not gone.
        // FlowControlStallMs as long: a reader that makes no progress for that long would stop holding its publishers.
        await using var broker = await TestBroker.StartAsync("Broker:OutboundQueueFrames=16", "Broker:OutboundQueueBytes=65536",
            "Broker:SlowConsumerMs=60000", "Broker:FlowControlStallMs=60000");
        await using var subscriber = await broker.ConnectAsync("late-reader");
        await using var publisher = await broker.ConnectAsync("publisher");
        await subscriber.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/flood\nreceipt:s\n\n\0");
        await subscriber.ReceiveAsync(StompCommand.Receipt);            // then reads nothing for a while
        const int count = 3000;
        var body = new string('x', 4096);                               // 12 MB: more than loopback socket buffers hold
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < count; i += 100)
                await publisher.SendAsync(string.Concat(Enumerable.Range(i, 100).Select(n => $"SEND\ndestination:/topic/flood\nn:{n}\n\n{body}\0")));
            await publisher.SendAsync("SEND\ndestination:/topic/other\nreceipt:after-the-burst\n\n\0");
        });
        var receipt = Task.Run(async () =>
        {
            var frame = await publisher.ReceiveAsync(TimeSpan.FromSeconds(60));
            return (frame, At: Stopwatch.GetTimestamp());
        });
        await Task.Delay(1500);
        Assert.False(receipt.IsCompleted, "the publisher was answered while its subscriber was above high water");
        Assert.True((await MetricsText.ScrapeAsync(broker.BaseUri))["wsbroker_flow_control_pauses_total"] >= 1);
        var resumed = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
            Assert.Equal(i.ToString(CultureInfo.InvariantCulture), (await subscriber.ReceiveAsync(StompCommand.Message)).Headers["n"]);
        var (answer, answeredAt) = await receipt;
        Assert.Equal("after-the-burst", answer.Headers["receipt-id"]);
        Assert.True(answeredAt > resumed, "answered only after the subscriber read again");
        await sending.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(broker.Services.GetRequiredService<SessionRegistry>().All, s => Assert.Null(s.Reason));
    }

    [Fact]
    public async Task PausedReader_IsCutAlone_AndTheOthersKeepTheirRate()
    {
        // Default flow-control settings: the paused reader holds the publisher for Broker:FlowControlStallMs (200 ms) at
        // most, then its queue grows until the hard cap (16 MiB; the run sends more) cuts it.
        await using var broker = await TestBroker.StartAsync("Broker:ShutdownTimeoutMs=1000");
        var sessions = broker.Services.GetRequiredService<SessionRegistry>();
        await using var publisher = await broker.ConnectAsync("publisher");
        await using var healthy1 = await broker.ConnectAsync("healthy1");
        await using var healthy2 = await broker.ConnectAsync("healthy2");
        await using var paused1 = await broker.ConnectAsync("paused1");
        await using var paused2 = await broker.ConnectAsync("paused2");
        await BurstAsync("/topic/warm-up", Count, publisher, healthy1, healthy2);   // JIT, pools and heap warm for every run
        // Runs on two shared cores vary by 10-30% alone, whichever the code: runs without (B) and with (W) a paused reader
        // alternate B W B W B, each W with a paused reader of its own, and the means are compared.
        var without = new List<TimeSpan>();
        var with = new List<TimeSpan>();
        var pausedSessions = new List<BrokerSession>();
        for (var round = 0; round < 2; round++)
        {
            without.Add(await BurstAsync($"/topic/without-{round}", Count, publisher, healthy1, healthy2));
            var paused = round == 0 ? paused1 : paused2;
            await paused.SendAsync($"SUBSCRIBE\nid:1\ndestination:/topic/with-{round}\nreceipt:s\n\n\0");
            await paused.ReceiveAsync(StompCommand.Receipt);            // and never reads again
            pausedSessions.Add(sessions.All.Single(s => s.Principal?.UserId == $"paused{round + 1}"));
            with.Add(await BurstAsync($"/topic/with-{round}", Count, publisher, healthy1, healthy2));
        }
        without.Add(await BurstAsync("/topic/without-last", Count, publisher, healthy1, healthy2));
        var baseline = TimeSpan.FromTicks((long)without.Average(t => t.Ticks));
        var withPaused = TimeSpan.FromTicks((long)with.Average(t => t.Ticks));
        var pauses = (await MetricsText.ScrapeAsync(broker.BaseUri))["wsbroker_flow_control_pauses_total"];
        output.WriteLine($"{Count} messages to 2 healthy subscribers: without a paused reader {string.Join(", ", without.Select(t => $"{t.TotalMilliseconds:F0}"))} ms, "
            + $"with one {string.Join(", ", with.Select(t => $"{t.TotalMilliseconds:F0}"))} ms ({withPaused / baseline:P0} of the mean); publisher paused {pauses} times");

        Assert.All(pausedSessions, p => Assert.Equal(DisconnectReason.SlowConsumer, p.Reason));
        Assert.All(sessions.All.Where(s => !pausedSessions.Contains(s)), s => Assert.Null(s.Reason));
        // The design grants the paused reader one hold of the publisher, Broker:FlowControlStallMs (200 ms by default), before
        // it holds no one: on a burst of 1-1.5 s that alone is 13-20%. What this guards against (held until the cut, or again
        // and again) costs seconds.
        var stall = TimeSpan.FromMilliseconds(new WsBroker.Broker.Options.BrokerOptions().FlowControlStallMs);
        Assert.True(withPaused <= baseline * 1.2 + stall,
            $"{withPaused.TotalMilliseconds:F0} ms with the paused reader vs {baseline.TotalMilliseconds:F0} ms without: more than 20% slower, past the one stall of {stall.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public async Task ConsumerThatNeverReads_IsCutByTheHardCap_WhenNothingElseWouldCutIt()
    {
        await using var broker = await TestBroker.StartAsync("Broker:OutboundQueueFrames=64", "Broker:OutboundQueueBytes=65536",
            "Broker:OutboundQueueHardCapFrames=256", "Broker:OutboundQueueHardCapBytes=1048576", "Broker:SlowConsumerMs=600000",
            "Broker:ShutdownTimeoutMs=1000");
        var sessions = broker.Services.GetRequiredService<SessionRegistry>();
        await using var deaf = await broker.ConnectAsync("deaf");
        await deaf.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/notices\nreceipt:s\n\n\0");
        await deaf.ReceiveAsync(StompCommand.Receipt);
        // The broker's own notices (no publisher to pause): they only queue, so only the hard cap can stop them.
        var backplane = broker.Services.GetRequiredService<IBackplane>();
        var body = Encoding.UTF8.GetBytes(new string('n', 4096));
        var session = sessions.All.Single(s => s.Principal?.UserId == "deaf");
        for (var i = 0; i < 20_000 && session.Reason is null; i++)
            backplane.Publish(SharedMessage.Create(i + 1, "/topic/notices", [], body));
        Assert.Equal(DisconnectReason.SlowConsumer, session.Reason);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (sessions.All.Contains(session) && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.DoesNotContain(session, sessions.All);
        Assert.True((await MetricsText.ScrapeAsync(broker.BaseUri))["wsbroker_slow_consumer_disconnects_total"] >= 1);
    }

    private const int Count = 60_000;

    // The publisher sends `count` 1 KiB messages in WebSocket messages of 100 SENDs; returns the time until both healthy
    // subscribers have all of them.
    private static async Task<TimeSpan> BurstAsync(string destination, int count, StompTestClient publisher, params StompTestClient[] readers)
    {
        foreach (var reader in readers)
        {
            await reader.SendAsync($"SUBSCRIBE\nid:{destination}\ndestination:{destination}\nreceipt:{destination}\n\n\0");
            await reader.ReceiveAsync(StompCommand.Receipt);
        }
        var body = new string('b', 1024);
        var started = Stopwatch.GetTimestamp();
        var reading = readers.Select(reader => Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
                Assert.Equal(i.ToString(CultureInfo.InvariantCulture), (await reader.ReceiveAsync(TimeSpan.FromSeconds(30))).Headers["n"]);
        })).ToArray();
        for (var i = 0; i < count; i += 100)
            await publisher.SendAsync(string.Concat(Enumerable.Range(i, 100).Select(n => $"SEND\ndestination:{destination}\nn:{n}\n\n{body}\0")));
        await Task.WhenAll(reading).WaitAsync(TimeSpan.FromSeconds(120));
        return Stopwatch.GetElapsedTime(started);
    }
}
