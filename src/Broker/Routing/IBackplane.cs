namespace WsBroker.Broker.Routing;

/// <summary>
/// The one place every fan-out passes (cf. SignalR's <c>HubLifetimeManager</c>): a SEND, a chat message, a presence or
/// seen notice. In one process it is <see cref="InProcessBackplane"/>; a cluster implementation also ships each message
/// (pre-serialised with <see cref="SharedMessage.WriteWire"/>) to the other nodes, and hands what it receives from them to
/// <see cref="LocalDelivery.DeliverFromBackplane"/>, which drops this node's own echo by the origin node sent with it.
/// The router's <see cref="TopicRouter.InterestChanged"/> tells it which destinations this node has subscribers for.
/// </summary>
public interface IBackplane
{
    /// <summary>Delivers <paramref name="message"/> to every matching subscription, here and (clustered) elsewhere.
    /// Never blocks and never awaits a subscriber.</summary>
    void Publish(SharedMessage message);

    /// <summary>Whether any subscriber, here or elsewhere, may want messages to <paramref name="destination"/>: a
    /// publisher need not build a message nobody would read.</summary>
    bool HasSubscribers(string destination);

    /// <summary>The backplane is back after a time in which messages other nodes published may not have reached this node
    /// (RabbitMQ restarted, or was out of reach). Never raised by <see cref="InProcessBackplane"/>.</summary>
    event Action? Resumed;
}
