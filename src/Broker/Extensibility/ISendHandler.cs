using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Extensibility;

/// <summary>
/// Takes over SENDs to some destinations (the chat's stored conversations, read receipts, typing). When a handler claims a
/// destination the engine neither routes the SEND nor answers its receipt: the handler does both through <see cref="SendContext"/>.
/// The access policy has already allowed the SEND.
/// </summary>
public interface ISendHandler
{
    /// <summary>Whether this handler takes SENDs to <paramref name="destination"/> (decided from its classification: no
    /// parsing here). Such SENDs are stored: their receipt waits for the commit.</summary>
    bool Handles(Destination destination);

    /// <summary>Handles one SEND. The read loop of the sender awaits it (inbound back-pressure for that client only), so
    /// slow work (a database commit) should continue after returning and complete the receipt later.</summary>
    ValueTask HandleAsync(SendContext context);
}
