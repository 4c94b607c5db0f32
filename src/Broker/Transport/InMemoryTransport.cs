using System.Buffers;
using System.IO.Pipelines;
using System.Net.WebSockets;
using System.Threading.Channels;

namespace WsBroker.Broker.Transport;

/// <summary>
/// A transport with no socket, for tests and benchmarks: the test writes the client's bytes to <see cref="Client"/> (a
/// byte stream: each receive returns what is there as one message) and reads what the session sent from
/// <see cref="Sent"/> (one entry per message). Completing <see cref="Client"/> is the client closing.
/// </summary>
public sealed class InMemoryTransport : IConnectionTransport
{
    private readonly Pipe _input = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
    private readonly Channel<SentMessage> _sent = Channel.CreateUnbounded<SentMessage>(new UnboundedChannelOptions { SingleReader = true });
    private int _closed;

    /// <summary>Where the test writes what the client sends.</summary>
    public PipeWriter Client => _input.Writer;

    /// <summary>Every message the session sent, in order; completed when the session closed or aborted.</summary>
    public ChannelReader<SentMessage> Sent => _sent.Reader;

    /// <summary>How the session ended the connection: a close with a reason, or null (open, or aborted).</summary>
    public DisconnectReason? ClosedWith { get; private set; }

    public bool Aborted { get; private set; }

    /// <summary>When true, <see cref="SendAsync"/> drops what it is given (benchmarks: the socket write is not measured).</summary>
    public bool Discard { get; init; }

    public async ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = await _input.Reader.ReadAsync(cancellationToken);
        if (read.Buffer.IsEmpty && read.IsCompleted) return new ValueWebSocketReceiveResult(0, WebSocketMessageType.Close, true);
        var count = (int)Math.Min(buffer.Length, read.Buffer.Length);
        var taken = read.Buffer.Slice(0, count);
        taken.CopyTo(buffer.Span);
        _input.Reader.AdvanceTo(taken.End);
        return new ValueWebSocketReceiveResult(count, WebSocketMessageType.Binary, endOfMessage: count == read.Buffer.Length);
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken)
    {
        if (!Discard) _sent.Writer.TryWrite(new SentMessage(message.ToArray(), binary));
        return ValueTask.CompletedTask;
    }

    public ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            ClosedWith = reason;
            _sent.Writer.TryComplete();
        }
        return ValueTask.CompletedTask;
    }

    public void Abort()
    {
        Aborted = true;
        _input.Writer.Complete();
        if (Interlocked.Exchange(ref _closed, 1) == 0) _sent.Writer.TryComplete();
    }
}
