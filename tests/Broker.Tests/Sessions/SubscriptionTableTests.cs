using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>A session's subscriptions: the first waits in a field of its own, a second one moves both into the id
/// dictionary; every lookup finds them either way.</summary>
public sealed class SubscriptionTableTests
{
    private static readonly IMessageSink s_sink = new NullSink();

    private static Func<int, Subscription> Make(string id, string destination) =>
        number => new Subscription(s_sink, id, Destination.Of(destination), AckMode.Auto, number);

    [Fact]
    public void One_then_two_then_back_to_none_are_found_by_id_number_and_destination()
    {
        var table = new SubscriptionTable(max: 3);
        Assert.Equal(SubscribeOutcome.Added, table.TryAdd("a", Make("a", "/topic/a"), out var a));
        Assert.Same(a, table.ById("a"));
        Assert.Same(a, table.ByNumber(1));
        Assert.Null(table.ById("b"));
        Assert.Null(table.ByNumber(2));
        Assert.False(table.Fence(d => d.Text == "/topic/x"));
        Assert.False(a!.IsFenced);
        Assert.True(table.Fence(d => d.Text == "/topic/a"));
        Assert.True(a.IsFenced);
        Assert.Equal(SubscribeOutcome.DuplicateId, table.TryAdd("a", Make("a", "/topic/x"), out _));

        Assert.Equal(SubscribeOutcome.Added, table.TryAdd("b", Make("b", "/topic/b"), out var b));
        Assert.Same(a, table.ById("a"));                              // the first moved with the second
        Assert.Same(b, table.ById("b"));
        Assert.Same(b, table.ByNumber(2));
        Assert.Equal(SubscribeOutcome.DuplicateId, table.TryAdd("a", Make("a", "/topic/x"), out _));
        Assert.Equal(SubscribeOutcome.Added, table.TryAdd("c", Make("c", "/topic/c"), out _));
        Assert.Equal(SubscribeOutcome.TooMany, table.TryAdd("d", Make("d", "/topic/d"), out _));

        Assert.Same(a, table.Remove("a"));
        Assert.Null(table.Remove("a"));
        Assert.Null(table.ById("a"));
        Assert.False(table.Fence(d => d.Text == "/topic/a"));
        Assert.True(table.Fence(d => d.Text == "/topic/c"));           // from the dictionary: c only
        Assert.False(b!.IsFenced);
        Assert.Equal(["b", "c"], table.Clear().Select(s => s.Id).Order());
        Assert.Null(table.ById("b"));
        Assert.Equal(SubscribeOutcome.Added, table.TryAdd("e", Make("e", "/topic/e"), out var e));
        Assert.Same(e, table.ById("e"));
    }

    [Fact]
    public void The_only_subscription_is_removed_and_cleared_like_any_other()
    {
        var table = new SubscriptionTable(max: 1);
        Assert.Equal(SubscribeOutcome.Added, table.TryAdd("a", Make("a", "/user/queue/errors"), out var a));
        Assert.Equal(SubscribeOutcome.TooMany, table.TryAdd("b", Make("b", "/topic/b"), out _));
        Assert.Equal(1, table.ForEachUserQueue("/user/queue/errors", 0, static (_, _) => { }));
        Assert.Null(table.Remove("b"));
        Assert.Same(a, table.Remove("a"));
        Assert.Equal(0, table.ForEachUserQueue("/user/queue/errors", 0, static (_, _) => { }));
        Assert.Empty(table.Clear());
        Assert.Equal(SubscribeOutcome.Added, table.TryAdd("b", Make("b", "/topic/b"), out var b));
        Assert.Equal([b!], table.Clear());
        Assert.Null(table.ById("b"));
    }

    private sealed class NullSink : IMessageSink
    {
        public DeliveryOutcome TryDeliver(Subscription subscription, SharedMessage message, bool replay = false) => DeliveryOutcome.Queued;
        public Task WhenDrained() => Task.CompletedTask;
        public bool IsStalled => false;
    }
}
