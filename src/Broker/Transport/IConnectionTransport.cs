using System.Net.WebSockets;

namespace WsBroker.Broker.Transport;

/// <summary>
/// What a session sees of its connection (cf. MQTTnet's channel adapter): receives of message bytes, whole messages
/// out, and the close. The WebSocket is one implementation (<see cref="WebSocketTransport"/>); tests and benchmarks use
/// <see cref="InMemoryTransport"/>. Sessions never touch sockets; the session's pump (<c>TransportPump</c>) owns the
/// buffers, so an idle connection holds none and its one pending receive is awaited directly, with no extra state.
/// </summary>
public interface IConnectionTransport
{
    /// <summary>Receives bytes of the client's messages into <paramref name="buffer"/>: the count, whether that ended a
    /// message, and <see cref="WebSocketMessageType.Close"/> when the client has gone. An empty buffer waits until bytes
    /// are available without taking any (how an idle connection waits without a buffer).</summary>
    ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Sends one message (one WebSocket message). Called by the session's one writer loop only.</summary>
    ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken);

    /// <summary>Starts the close handshake with a status that says why (after everything sent).</summary>
    ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken);

    /// <summary>Drops the connection now.</summary>
    void Abort();
}
