using Microsoft.Extensions.Options;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Routing;

/// <summary>Hands a message to every matching subscription on this node. Never waits for a subscriber: a sink over its hard
/// cap drops itself (slow consumer), and a sink above its high-water mark is charged to the publishing session's
/// <see cref="PublisherCredit"/>, whose read loop waits for it before it reads more (docs/design.md §3).</summary>
public sealed class LocalDelivery(TopicRouter router, BrokerMetrics metrics, IOptions<BrokerOptions> options)
{
    private readonly int _nodeId = options.Value.NodeId;

    /// <summary>Delivers to this node's subscribers; returns how many took it.</summary>
    public int Deliver(SharedMessage message)
    {
        var delivered = 0;
        PublisherCredit? publisher = null;
        var charged = false;
        foreach (var subscription in router.Match(message.Destination))
        {
            switch (subscription.Deliver(message))
            {
                case DeliveryOutcome.Queued:
                    delivered++;
                    break;
                case DeliveryOutcome.QueuedAboveHighWater:
                    delivered++;
                    // The ambient account is looked up only here: a publish that finds every queue below high water costs
                    // nothing more than before.
                    if (!charged)
                    {
                        publisher = PublisherCredit.Current;
                        charged = true;
                    }
                    publisher?.Owe(subscription.Sink);
                    break;
            }
        }
        metrics.Delivered(delivered);
        return delivered;
    }

    /// <summary>A message another node published: delivered here unless it is this node's own (its echo).</summary>
    public int DeliverFromBackplane(SharedMessage message) => IsOwnEcho(message.Id) ? 0 : Deliver(message);

    /// <summary>Whether <paramref name="messageId"/> was made by this node's <see cref="MessageIdGenerator"/>.</summary>
    public bool IsOwnEcho(long messageId) => MessageIdGenerator.NodeOf(messageId) == _nodeId;
}
