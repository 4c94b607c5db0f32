namespace WsBroker.Broker.Routing;

/// <summary>What a subscription's acknowledgement window makes of a delivery.</summary>
public enum Admission : byte
{
    /// <summary>Goes out now.</summary>
    Deliver,
    /// <summary>Waits in the subscription until ACKs open its <c>prefetch-count</c> window.</summary>
    Wait,
    /// <summary>Too many unacknowledged or waiting: the consumer is cut.</summary>
    Overflow,
}
