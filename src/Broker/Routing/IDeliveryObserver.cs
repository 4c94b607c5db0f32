using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Routing;

/// <summary>
/// Learns when a message has reached its recipient: written to the recipient's socket under <c>ack:auto</c>, or ACKed
/// under <c>client</c>/<c>client-individual</c>. A plug-in that keeps a delivered status (the chat) implements it for its
/// destinations; the session reports only messages whose <c>Receiver</c> is the session's user.
/// </summary>
public interface IDeliveryObserver
{
    /// <summary>Whether subscriptions to <paramref name="destination"/> report deliveries here.</summary>
    bool Observes(Destination destination);

    /// <summary>Message <paramref name="messageId"/> reached a session of <paramref name="userId"/>. Called on the session's
    /// writer or read loop: must not block.</summary>
    void Delivered(long messageId, string userId);
}
