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

    /// <summary>A message the backplane brought from node <paramref name="originNode"/>: delivered here unless this node
    /// published it (its echo; it was delivered here when published). The origin travels with the message, not in its id:
    /// a seen or delivered notice carries the id of a chat message another node made.</summary>
    public int DeliverFromBackplane(SharedMessage message, int originNode) => originNode == _nodeId ? 0 : Deliver(message);
}
