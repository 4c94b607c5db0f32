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
    /// <summary>The client sent a message or frame over the broker's limit.</summary>
    MessageTooBig,
}

/// <summary>What a <see cref="DisconnectReason"/> means on the wire.</summary>
public static class DisconnectReasons
{
    /// <summary>The WebSocket close status a reason maps to (RFC 6455 §7.4.1).</summary>
    public static WebSocketCloseStatus ToCloseStatus(this DisconnectReason reason) => reason switch
    {
        DisconnectReason.ProtocolError or DisconnectReason.AuthenticationFailed or DisconnectReason.SlowConsumer => WebSocketCloseStatus.PolicyViolation,
        DisconnectReason.MessageTooBig => WebSocketCloseStatus.MessageTooBig,
        DisconnectReason.ServerShutdown => WebSocketCloseStatus.EndpointUnavailable,
        DisconnectReason.BackplaneGap => (WebSocketCloseStatus)1012,    // RFC 6455 registry: service restart, reconnect
        _ => WebSocketCloseStatus.NormalClosure,
    };
}
