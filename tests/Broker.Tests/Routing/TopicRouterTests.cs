using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker.Tests.Routing;

public class TopicRouterTests
{
    // Thousands of subscribers to one topic (a broadcast to every customer): each add and remove keeps exactly the others
    // (the order among them is not kept: a remove moves the last one into its place), and the slot is gone with the last one.
    [Theory]
    [InlineData("/topic/all")]
    [InlineData("/topic/all/#")]
    public void ManySubscribersToOneDestination_AddAndRemove_KeepExactlyTheRest(string destination)
    {
        var router = new TopicRouter();
        var events = new List<bool>();
        router.InterestChanged += (_, on) => events.Add(on);
        var sink = new NullSink();
        var subscriptions = Enumerable.Range(0, 3000)
            .Select(i => new Subscription(sink, "s" + i, Destination.Of(destination), AckMode.Auto, i)).ToArray();
        foreach (var s in subscriptions) router.Add(s);
        Assert.Equal(subscriptions, Sorted(router.Match("/topic/all")));
        Assert.Equal(3000, router.Count);

        foreach (var s in subscriptions.Where((_, i) => i % 3 != 0)) Assert.True(router.Remove(s));
        var rest = subscriptions.Where((_, i) => i % 3 == 0).ToArray();
        Assert.Equal(rest, Sorted(router.Match("/topic/all")));
        Assert.False(router.Remove(subscriptions[1]));                     // already gone
        Assert.Equal(1000, router.Count);

        var late = new Subscription(sink, "late", Destination.Of(destination), AckMode.Auto, 9999);
        router.Add(late);                                                  // after the slot shrank
        Assert.Equal([.. rest, late], Sorted(router.Match("/topic/all")));

        foreach (var s in rest) Assert.True(router.Remove(s));
        Assert.Equal([late], router.Match("/topic/all"));
        Assert.True(router.Remove(late));
        Assert.Empty(router.Match("/topic/all"));
        Assert.Empty(router.Patterns);
        Assert.Equal(0, router.Count);
        Assert.Equal([true, false], events);                               // one interest, given back once
    }

    [Fact]
    public void Remove_NeverAdded_IsFalseAndTouchesNothing()
    {
        var router = new TopicRouter();
        var sink = new NullSink();
        var here = new Subscription(sink, "a", Destination.Of("/topic/a"), AckMode.Auto, 1);
        router.Add(here);
        Assert.False(router.Remove(new Subscription(sink, "b", Destination.Of("/topic/a"), AckMode.Auto, 2)));
        Assert.False(router.Remove(new Subscription(sink, "c", Destination.Of("/topic/b"), AckMode.Auto, 3)));
        var elsewhere = new Subscription(sink, "d", Destination.Of("/topic/a"), AckMode.Auto, 4);
        new TopicRouter().Add(elsewhere);                                 // index 0 of another router's slot
        Assert.False(router.Remove(elsewhere));
        Assert.Equal([here], router.Match("/topic/a"));
        Assert.Equal(["/topic/a"], router.Patterns);
    }

    [Fact]
    public void Add_TheSameSubscriptionTwice_Throws_AndAfterItsRemoveItMayComeBack()
    {
        var router = new TopicRouter();
        var subscription = new Subscription(new NullSink(), "a", Destination.Of("/topic/a"), AckMode.Auto, 1);
        router.Add(subscription);
        Assert.Throws<InvalidOperationException>(() => router.Add(subscription));
        Assert.Equal([subscription], router.Match("/topic/a"));            // the refused add left nothing behind
        Assert.True(router.Remove(subscription));
        router.Add(subscription);
        Assert.Equal([subscription], router.Match("/topic/a"));
    }

    private static Subscription[] Sorted(Subscription[] matched) => [.. matched.OrderBy(s => s.Number)];

    private sealed class NullSink : IMessageSink
    {
        public DeliveryOutcome TryDeliver(Subscription subscription, SharedMessage message, bool replay = false) => DeliveryOutcome.Queued;
        public Task WhenDrained() => Task.CompletedTask;
        public bool IsStalled => false;
    }
}
