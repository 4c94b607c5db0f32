using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>One item of an <see cref="Outbox"/>: a delivery (shared message and the subscription it is for), a whole
/// frame (its bytes, possibly rented from the pool, and the command the metrics count it as), a heart-beat, or the close.</summary>
internal readonly record struct Outbound(OutboundKind Kind, StompCommand Command, Subscription? Subscription, SharedMessage? Message,
    byte[]? Bytes, int Length, bool Pooled, bool Binary, bool Counted, bool Replay = false)
{
    /// <summary>Approximate bytes this item costs while queued.</summary>
    public int Size => Message?.Size ?? Length;

    public static Outbound Delivery(Subscription subscription, SharedMessage message, bool replay) =>
        new(OutboundKind.Delivery, StompCommand.Message, subscription, message, null, 0, false, false, true, replay);

    public static Outbound Frame(StompCommand command, byte[] bytes, int length, bool pooled, bool binary) =>
        new(OutboundKind.Frame, command, null, null, bytes, length, pooled, binary, true);

    public static Outbound HeartBeat => new(OutboundKind.HeartBeat, StompCommand.None, null, null, null, 1, false, false, false);

    public static Outbound Close => new(OutboundKind.Close, StompCommand.None, null, null, null, 0, false, false, false);
}
