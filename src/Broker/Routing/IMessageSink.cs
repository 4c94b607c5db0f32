namespace WsBroker.Broker.Routing;

/// <summary>Something that takes deliveries: a session's bounded outbox.</summary>
public interface IMessageSink
{
    /// <summary>Queues a delivery without blocking; false when the sink is closed or overloaded (it then drops itself).
    /// <paramref name="replay"/>: a stored message given again to a subscription resuming with <c>since</c>.</summary>
    bool TryDeliver(Subscription subscription, SharedMessage message, bool replay = false);
}
