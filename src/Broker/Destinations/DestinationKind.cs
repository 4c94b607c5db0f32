namespace WsBroker.Broker.Destinations;

/// <summary>The families of destinations the broker serves.</summary>
public enum DestinationKind : byte
{
    /// <summary><c>/topic/…</c>: every subscriber gets every message; nothing is kept for absent subscribers.</summary>
    Topic,
    /// <summary><c>/user/queue/…</c>: written by the broker to one session only (errors); never routed.</summary>
    UserQueue,
    /// <summary><c>/session/token</c>: a SEND to it is about the session itself (a token refresh); never routed, never
    /// stored, and not a destination to SUBSCRIBE to.</summary>
    Session,
}
