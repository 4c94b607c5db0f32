using System.Net.WebSockets;

namespace WsBroker.Broker.Transport;

/// <summary>
/// A session's transport over an ASP.NET Core <see cref="WebSocket"/>. Text and binary messages alike are read into
/// <see cref="Input"/>: as one byte stream for STOMP (frames may span messages, one message may carry several frames), or
/// one whole message per read for raw topic URLs (<paramref name="messageLimit"/> &gt; 0).
/// </summary>
public sealed class WebSocketTransport(WebSocket socket, int messageLimit = 0) : IConnectionTransport
{
    private readonly WebSocketInput _input = new(socket, messageLimit);

    public System.IO.Pipelines.PipeReader Input => _input;

    public long PartialInputSinceMs => _input.PendingSinceMs;

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken) =>
        socket.SendAsync(message, binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text, true, cancellationToken);

    public async ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return;
        await socket.CloseOutputAsync(StatusOf(reason), reason.ToString(), cancellationToken);
    }

    public void Abort() => socket.Abort();

    /// <summary>The close status a reason maps to (RFC 6455 §7.4.1).</summary>
    public static WebSocketCloseStatus StatusOf(DisconnectReason reason) => reason switch
    {
        DisconnectReason.ProtocolError or DisconnectReason.AuthenticationFailed or DisconnectReason.SlowConsumer => WebSocketCloseStatus.PolicyViolation,
        DisconnectReason.ServerShutdown => WebSocketCloseStatus.EndpointUnavailable,
        _ => WebSocketCloseStatus.NormalClosure,
    };
}
