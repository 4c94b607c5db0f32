using System.IO.Pipelines;

namespace WsBroker.Broker.Transport;

/// <summary>
/// What a session sees of its connection (cf. SignalR's <c>IDuplexPipe</c>, MQTTnet's channel adapter): bytes in through
/// <see cref="Input"/>, whole messages out through <see cref="SendAsync"/>, and the close. The WebSocket is one
/// implementation (<see cref="WebSocketTransport"/>); tests and benchmarks use <see cref="InMemoryTransport"/>. Sessions
/// never touch sockets.
/// </summary>
public interface IConnectionTransport
{
    /// <summary>Bytes from the client. An idle connection holds no buffer: memory is taken when bytes arrive and given
    /// back once everything read has been consumed.</summary>
    PipeReader Input { get; }

    /// <summary>When the transport has held bytes the session has not consumed yet (a frame left half-sent) since
    /// (<see cref="Environment.TickCount64"/>), or 0 when it holds none.</summary>
    long PartialInputSinceMs { get; }

    /// <summary>Sends one message (one WebSocket message). Called by the session's one writer loop only.</summary>
    ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken);

    /// <summary>Starts the close handshake with a status that says why (after everything sent).</summary>
    ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken);

    /// <summary>Drops the connection now.</summary>
    void Abort();
}
