using System.Net.WebSockets;

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
    /// <summary>The client sent a message or frame over the broker's limit.</summary>
    MessageTooBig,
}

/// <summary>What a <see cref="DisconnectReason"/> means on the wire.</summary>
public static class DisconnectReasons
{
    /// <summary>The close code of an expired token: in the 4000-4999 range RFC 6455 §7.4.2 leaves to applications.</summary>
    public const int TokenExpiredCloseCode = 4001;

    /// <summary>The close reason text: the reason's name, or what a client is told of an expired token.</summary>
    public static string Description(this DisconnectReason reason) => reason == DisconnectReason.TokenExpired ? "token expired" : reason.ToString();

    /// <summary>The WebSocket close status a reason maps to (RFC 6455 §7.4.1).</summary>
    public static WebSocketCloseStatus ToCloseStatus(this DisconnectReason reason) => reason switch
    {
        DisconnectReason.TokenExpired => (WebSocketCloseStatus)TokenExpiredCloseCode,
        DisconnectReason.ProtocolError or DisconnectReason.AuthenticationFailed or DisconnectReason.SlowConsumer => WebSocketCloseStatus.PolicyViolation,
        DisconnectReason.MessageTooBig => WebSocketCloseStatus.MessageTooBig,
        DisconnectReason.ServerShutdown => WebSocketCloseStatus.EndpointUnavailable,
        DisconnectReason.BackplaneGap => (WebSocketCloseStatus)1012,    // RFC 6455 registry: service restart, reconnect
        _ => WebSocketCloseStatus.NormalClosure,
    };
}
