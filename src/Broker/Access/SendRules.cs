using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Access;

/// <summary>What no policy may allow on a SEND, whoever sends it.</summary>
public static class SendRules
{
    /// <summary>null when a SEND to <paramref name="destination"/> can be routed; else the business rejection.</summary>
    public static string? Check(Destination destination) =>
        destination.Kind == DestinationKind.UserQueue ? "could-not-send-message: /user destinations are written by the broker only"
        : destination.Kind == DestinationKind.Session ? "could-not-send-message: /session destinations are handled by the session, not routed"
        : destination.IsPattern ? "could-not-send-message: cannot send to a wildcard destination"
        : null;
}
