namespace WsBroker.Broker.Transport;

/// <summary>Why a connection ended; logged once per connection.</summary>
public enum DisconnectReason
{
    ClientClosed,
    ProtocolError,
    AuthenticationFailed,
    SlowConsumer,
    HeartbeatTimeout,
    ConnectTimeout,
    ServerShutdown,
    UserDeleted,
    TransportError,
    /// <summary>The cluster backplane was away: the session resumes elsewhere or here with <c>since</c>.</summary>
    BackplaneGap,
    /// <summary>The session's token expired without a refresh (docs/design.md §3 "Long-lived sessions").</summary>
    TokenExpired,
}
