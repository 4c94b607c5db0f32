using Microsoft.Extensions.Options;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Routing;

/// <summary>Hands a message to every matching subscription on this node. Never waits for a subscriber: a sink that cannot
/// take it drops itself (slow consumer).</summary>
public sealed class LocalDelivery(TopicRouter router, BrokerMetrics metrics, IOptions<BrokerOptions> options)
{
    private readonly int _nodeId = options.Value.NodeId;

    /// <summary>Delivers to this node's subscribers; returns how many took it.</summary>
    public int Deliver(SharedMessage message)
    {
        var delivered = 0;
        foreach (var subscription in router.Match(message.Destination))
        {
            if (subscription.Deliver(message)) delivered++;
        }
        metrics.Delivered(delivered);
        return delivered;
    }

    /// <summary>A message another node published: delivered here unless it is this node's own (its echo).</summary>
    public int DeliverFromBackplane(SharedMessage message) => IsOwnEcho(message.Id) ? 0 : Deliver(message);

    /// <summary>Whether <paramref name="messageId"/> was made by this node's <see cref="MessageIdGenerator"/>.</summary>
    public bool IsOwnEcho(long messageId) => MessageIdGenerator.NodeOf(messageId) == _nodeId;
}
