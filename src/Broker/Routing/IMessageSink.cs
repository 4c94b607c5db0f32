namespace WsBroker.Broker.Routing;

/// <summary>Something that takes deliveries: a session's bounded outbox.</summary>
public interface IMessageSink
{
    /// <summary>Queues a delivery without blocking. <see cref="DeliveryOutcome.Refused"/> when the sink is closed or over
    /// its hard cap (it then drops itself); <see cref="DeliveryOutcome.QueuedAboveHighWater"/> asks the publisher to wait
    /// for <see cref="WhenDrained"/> before it reads more. <paramref name="replay"/>: a stored message given again to a subscription resuming with <c>since</c>.</summary>
    DeliveryOutcome TryDeliver(Subscription subscription, SharedMessage message, bool replay = false);

    /// <summary>Completes once the sink's queue is back under its low-water mark, or the sink is closing (a slow consumer
    /// cut for making no write progress holds no publisher).</summary>
    Task WhenDrained();

    /// <summary>True while the sink's socket send has made no progress for <c>Broker:FlowControlStallMs</c>: it holds no
    /// publisher (a publisher waiting for <see cref="WhenDrained"/> stops waiting) until a send completes again.</summary>
    bool IsStalled { get; }
}
