namespace WsBroker.Broker.Routing;

/// <summary>What a sink did with one delivery.</summary>
public enum DeliveryOutcome
{
    /// <summary>Not taken: the sink is closed or over its hard cap (it then drops itself as a slow consumer).</summary>
    Refused,
    /// <summary>Queued.</summary>
    Queued,
    /// <summary>Queued, and the sink's queue is above its high-water mark: the publisher owes it credit
    /// (<see cref="PublisherCredit"/>).</summary>
    QueuedAboveHighWater,
}
