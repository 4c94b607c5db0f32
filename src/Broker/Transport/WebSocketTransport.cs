using System.IO.Pipelines;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;

namespace WsBroker.Broker.Transport;

/// <summary>A session's transport over an ASP.NET Core <see cref="WebSocket"/> (<c>Broker:Transport=AspNetCore</c>). The
/// socket receives into a pipe borrowed from <see cref="PipePool"/> while bytes are in flight; an idle connection waits
/// with a zero-byte receive and holds no pipe. <paramref name="writes"/>, the upgraded stream under the socket, times its
/// writes: one pending longer than <paramref name="writeTimeoutMs"/> (<c>Broker:SlowConsumerMs</c>) drops the connection,
/// whoever wrote it (the socket answers pings and closes from inside a receive, on no clock of the session's).</summary>
public sealed class WebSocketTransport(WebSocket socket, TimedWriteStream? writes, int writeTimeoutMs) : IConnectionTransport, IDisposable
{
    private Pipe? _pipe;
    private SequencePosition? _end;                              // end of the last read's buffer (null: it was empty)

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken)
    {
        if (_pipe is null)
        {
            var probe = await socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken);
            if (probe.MessageType == WebSocketMessageType.Close) return TransportReadResult.Completed;
            _pipe = PipePool.Rent();
        }
        var received = await socket.ReceiveAsync(_pipe.Writer.GetMemory(1), cancellationToken);
        if (received.MessageType == WebSocketMessageType.Close) return TransportReadResult.Completed;
        _pipe.Writer.Advance(received.Count);
        await _pipe.Writer.FlushAsync(cancellationToken);          // no pause threshold: completes at once
        if (!_pipe.Reader.TryRead(out var read))                     // an empty message into an empty pipe
        {
            _end = null;
            return new TransportReadResult(default, received.EndOfMessage, IsCompleted: false);
        }
        _end = read.Buffer.End;
        return new TransportReadResult(read.Buffer, received.EndOfMessage, IsCompleted: false);
    }

    public void AdvanceTo(SequencePosition consumed)
    {
        if (_pipe is null) return;
        if (_end is not { } end)
        {
            PipePool.Return(_pipe);
            _pipe = null;
            return;
        }
        // examined = everything: the next read waits for new bytes.
        _pipe.Reader.AdvanceTo(consumed, end);
        if (!consumed.Equals(end)) return;
        PipePool.Return(_pipe);                                      // nothing half-read: give the pipe back
        _pipe = null;
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken) =>
        socket.SendAsync(message, binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text, true, cancellationToken);

    public async ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return;
        await socket.CloseOutputAsync(reason.ToCloseStatus(), reason.Description(), cancellationToken);
    }

    public void Abort() => socket.Abort();

    /// <summary>Drops the connection when a write has been pending too long. A raw topic URL's pings are ASP.NET Core's
    /// keep-alive on this path (its own timer per connection, set up by <c>WebSocketEndpoint</c>).</summary>
    public void KeepAlive(long nowMs)
    {
        if (writes?.WritingSinceMs is > 0 and var since && nowMs - since > writeTimeoutMs) socket.Abort();
    }

    /// <summary>Releases the socket, and a half-read pipe (not reused), once the session has ended.</summary>
    public void Dispose()
    {
        socket.Dispose();
        if (_pipe is null) return;
        _pipe.Reader.Complete();
        _pipe.Writer.Complete();
        _pipe = null;
    }
}
