namespace WsBroker.Broker.Sessions;

/// <summary>How a SUBSCRIBE fared in a <see cref="SubscriptionTable"/>.</summary>
internal enum SubscribeOutcome : byte { Added, DuplicateId, TooMany }
