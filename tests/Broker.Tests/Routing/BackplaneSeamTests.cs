using System.Buffers;
using System.Text;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Routing;

public class BackplaneSeamTests
{
    [Fact]
    public void SharedMessage_RebuiltFromItsWireBytes_WritesTheSameFrames()
    {
        var original = SharedMessage.Create(42, "/topic/a b", [new("content-type", "text/plain"), new("x:y", "v\nw")],
            Encoding.UTF8.GetBytes("héllo"), sender: "u1", receiver: null, timestamp: 1234);
        var wire = new ArrayBufferWriter<byte>();
        original.WriteWire(wire);
        Assert.True(SharedMessage.TryReadWire(wire.WrittenSpan, out var copy));
        Assert.Equal(original.Id, copy.Id);
        Assert.Equal(original.Destination, copy.Destination);
        Assert.Equal("u1", copy.Sender);
        Assert.Null(copy.Receiver);
        Assert.Equal(1234, copy.Timestamp);
        Assert.Equal(original.Body.ToArray(), copy.Body.ToArray());
        foreach (var version in new[] { StompVersion.V1_0, StompVersion.V1_1, StompVersion.V1_2 })
            Assert.Equal(Tail(original, version), Tail(copy, version));
        Assert.Equal(original.Json.ToArray(), copy.Json.ToArray());
    }

    [Fact]
    public void SharedMessage_WireBytesCutOrChanged_AreRefused()
    {
        var wire = new ArrayBufferWriter<byte>();
        SharedMessage.Create(7, "/topic/a", [], Encoding.UTF8.GetBytes("body")).WriteWire(wire);
        var bytes = wire.WrittenSpan.ToArray();
        for (var length = 0; length < bytes.Length; length++)
            Assert.False(SharedMessage.TryReadWire(bytes.AsSpan(0, length), out _));
        var wrongVersion = (byte[])bytes.Clone();
        wrongVersion[0] = 99;
        Assert.False(SharedMessage.TryReadWire(wrongVersion, out _));
        Assert.False(SharedMessage.TryReadWire([.. bytes, 0], out _));
    }

    [Fact]
    public void LocalDelivery_OwnEcho_IsDroppedByTheOriginNode_NotByTheNodeInTheMessageId()
    {
        var router = new TopicRouter();
        var sink = new CountingSink();
        router.Add(new Subscription(sink, "s", Destination.Of("/topic/a"), AckMode.Auto, 1));
        var delivery = new LocalDelivery(router, Sessions.SessionServices.Metrics(), Microsoft.Extensions.Options.Options.Create(new BrokerOptions { NodeId = 3 }));
        var mine = SharedMessage.Create(new MessageIdGenerator(3).Next(), "/topic/a", [], Encoding.UTF8.GetBytes("x"));
        var theirs = SharedMessage.Create(new MessageIdGenerator(4).Next(), "/topic/a", [], Encoding.UTF8.GetBytes("y"));
        Assert.Equal(0, delivery.DeliverFromBackplane(theirs, originNode: 3));   // published here, back from the backplane
        Assert.Equal(1, delivery.DeliverFromBackplane(theirs, originNode: 4));
        // A notice node 4 published about node 3's message carries node 3's message id: still delivered on node 3.
        Assert.Equal(1, delivery.DeliverFromBackplane(mine, originNode: 4));
        Assert.Equal(1, delivery.Deliver(mine));                      // published here: delivered here
        Assert.Equal(3, sink.Count);
    }

    [Fact]
    public void Router_InterestChanged_OnFirstAndLastSubscriptionOfEachDestination()
    {
        var router = new TopicRouter();
        var events = new List<(string, bool)>();
        router.InterestChanged += (d, on) => events.Add((d.Text, on));
        var sink = new CountingSink();
        var a1 = new Subscription(sink, "1", Destination.Of("/topic/a/#"), AckMode.Auto, 1);
        var a2 = new Subscription(sink, "2", Destination.Of("/topic/a/#"), AckMode.Auto, 2);
        router.Add(a1);
        router.Add(a2);
        router.Remove(a1);
        Assert.Equal([("/topic/a/#", true)], events);
        router.Remove(a2);
        Assert.Equal([("/topic/a/#", true), ("/topic/a/#", false)], events);
        Assert.Empty(router.Patterns);
    }

    [Fact]
    public void Router_WildcardChange_InvalidatesOnlyWhatItMatches()
    {
        var router = new TopicRouter();
        var sink = new CountingSink();
        router.Add(new Subscription(sink, "x", Destination.Of("/topic/other"), AckMode.Auto, 1));
        var other = router.Match("/topic/other");
        var before = router.Match("/topic/news/eu");
        Assert.Empty(before);
        var wildcard = new Subscription(sink, "w", Destination.Of("/topic/news/*"), AckMode.Auto, 2);
        router.Add(wildcard);
        Assert.Same(other, router.Match("/topic/other"));             // a cache entry the pattern cannot match is kept
        Assert.Equal([wildcard], router.Match("/topic/news/eu"));
        router.Remove(wildcard);
        Assert.Same(other, router.Match("/topic/other"));
        Assert.Empty(router.Match("/topic/news/eu"));
    }

    [Theory]
    [InlineData("/topic/a/*", "/topic/a/b", true)]
    [InlineData("/topic/a/*", "/topic/a", false)]
    [InlineData("/topic/a/*", "/topic/a/b/c", false)]
    [InlineData("/topic/a/#", "/topic/a", true)]
    [InlineData("/topic/a/#", "/topic/a/b/c", true)]
    [InlineData("/topic/a/#", "/topic/ab", false)]
    [InlineData("/topic/*/c", "/topic/b/c", true)]
    [InlineData("/topic/a", "/topic/a", true)]
    [InlineData("/topic/a", "/topic/a/b", false)]
    public void Router_Matches_AgreesWithDelivery(string pattern, string destination, bool matches)
    {
        Assert.Equal(matches, TopicRouter.Matches(Destination.Of(pattern).SplitSegments(), destination));
        var router = new TopicRouter();
        router.Add(new Subscription(new CountingSink(), "s", Destination.Of(pattern), AckMode.Auto, 1));
        Assert.Equal(matches, router.Match(destination).Length == 1);
    }

    // A message the replay read may reach the subscription live only after the hand-off (its publish ran late, or came
    // from another node), and a cluster node that takes a conversation over may publish one again: a resumed subscription
    // never delivers an id twice. Newer ones are delivered.
    [Fact]
    public void Subscription_LiveMessageTheReplayAlreadyGave_ArrivingAfterTheHandOff_IsDropped()
    {
        var sink = new CountingSink();
        var subscription = new Subscription(sink, "s", Destination.Of("/topic/a"), AckMode.Auto, 1);
        SharedMessage Message(long id) => SharedMessage.Create(id, "/topic/a", [], Encoding.UTF8.GetBytes("x"));
        subscription.BeginReplay();
        Assert.Equal(DeliveryOutcome.Queued, subscription.Deliver(Message(11)));   // held during the replay
        subscription.EndReplay(lastReplayedId: 12);                               // the replay gave up to 12
        Assert.Equal(0, sink.Count);                                              // 11 was given by the replay
        subscription.Deliver(Message(12));                                        // late: dropped
        subscription.Deliver(Message(13));
        subscription.Deliver(Message(13));                                        // published again by a new owner: dropped
        Assert.Equal(1, sink.Count);
    }

    // After a backplane gap a resumable subscription is fenced: nothing more reaches its sink, live or held back by a replay
    // that ends later (the held messages it had before the fence still go out: they came before the gap).
    [Fact]
    public void Subscription_Fenced_DeliversNothingMore()
    {
        var sink = new CountingSink();
        var live = new Subscription(sink, "s", Destination.Of("/topic/a"), AckMode.Auto, 1);
        SharedMessage Message(long id) => SharedMessage.Create(id, "/topic/a", [], Encoding.UTF8.GetBytes("x"));
        live.Deliver(Message(1));
        Assert.False(live.IsFenced);
        live.Fence();
        Assert.True(live.IsFenced);
        Assert.Equal(DeliveryOutcome.Queued, live.Deliver(Message(2)));
        Assert.Equal(1, sink.Count);

        var replaying = new Subscription(sink, "r", Destination.Of("/topic/a"), AckMode.Auto, 2);
        replaying.BeginReplay();
        replaying.Deliver(Message(5));                                             // held, before the gap
        replaying.Fence();
        replaying.Deliver(Message(6));                                             // after it: dropped
        replaying.EndReplay(lastReplayedId: 4);
        Assert.Equal(2, sink.Count);                                              // 1, then 5
    }

    private static byte[] Tail(SharedMessage message, StompVersion version)
    {
        var output = new ArrayBufferWriter<byte>();
        message.WriteTail(output, version);
        return output.WrittenSpan.ToArray();
    }

    private sealed class CountingSink : IMessageSink
    {
        public int Count;

        public DeliveryOutcome TryDeliver(Subscription subscription, SharedMessage message, bool replay = false)
        {
            Count++;
            return DeliveryOutcome.Queued;
        }

        public Task WhenDrained() => Task.CompletedTask;
        public bool IsStalled => false;
    }
}
