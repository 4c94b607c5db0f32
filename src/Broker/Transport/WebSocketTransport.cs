using System.Net.WebSockets;

namespace WsBroker.Broker.Transport;

/// <summary>A session's transport over an ASP.NET Core <see cref="WebSocket"/>: its receives are the socket's own, so a
/// pending one costs nothing beyond what the socket already holds.</summary>
public sealed class WebSocketTransport(WebSocket socket) : IConnectionTransport
{
    public ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        socket.ReceiveAsync(buffer, cancellationToken);

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken) =>
        socket.SendAsync(message, binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text, true, cancellationToken);

    public async ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return;
        await socket.CloseOutputAsync(StatusOf(reason), DescriptionOf(reason), cancellationToken);
    }

    public void Abort() => socket.Abort();

    /// <summary>The close code of an expired token: in the 4000-4999 range RFC 6455 §7.4.2 leaves to applications.</summary>
    public const int TokenExpiredCloseCode = 4001;

    /// <summary>The close status a reason maps to (RFC 6455 §7.4.1).</summary>
    public static WebSocketCloseStatus StatusOf(DisconnectReason reason) => reason switch
    {
        DisconnectReason.TokenExpired => (WebSocketCloseStatus)TokenExpiredCloseCode,
        DisconnectReason.ProtocolError or DisconnectReason.AuthenticationFailed or DisconnectReason.SlowConsumer => WebSocketCloseStatus.PolicyViolation,
        DisconnectReason.ServerShutdown => WebSocketCloseStatus.EndpointUnavailable,
        DisconnectReason.BackplaneGap => (WebSocketCloseStatus)1012,    // RFC 6455 registry: service restart, reconnect
        _ => WebSocketCloseStatus.NormalClosure,
    };

    /// <summary>The close reason text: the reason's name, or what a client is told of an expired token.</summary>
    public static string DescriptionOf(DisconnectReason reason) => reason == DisconnectReason.TokenExpired ? "token expired" : reason.ToString();
}
