using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace WsBroker.Broker.Transport;

/// <summary>
/// A transport with no socket, for tests and benchmarks: the test writes the client's bytes to <see cref="Client"/> (a
/// byte stream: each read returns what is there as one message) and reads what the session sent from
/// <see cref="Sent"/> (one entry per message). Completing <see cref="Client"/> is the client closing.
/// </summary>
public sealed class InMemoryTransport : IConnectionTransport
{
    private readonly Pipe _input = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
    private readonly Channel<SentMessage> _sent = Channel.CreateUnbounded<SentMessage>(new UnboundedChannelOptions { SingleReader = true });
    private ReadOnlySequence<byte> _last;                       // the last read's buffer
    private long _left;                                          // unconsumed bytes the last read left
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

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken)
    {
        var read = await _input.Reader.ReadAsync(cancellationToken);
        // Completed: the client closed; a trailing partial frame dies with it.
        if (read.IsCompleted && read.Buffer.Length == _left)
        {
            _input.Reader.AdvanceTo(read.Buffer.End);
            return TransportReadResult.Completed;
        }
        _last = read.Buffer;
        return new TransportReadResult(read.Buffer, EndOfMessage: true, IsCompleted: false);
    }

    public void AdvanceTo(SequencePosition consumed)
    {
        _input.Reader.AdvanceTo(consumed, _last.End);
        _left = _last.Slice(consumed).Length;
        _last = default;
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

    public void KeepAlive(long nowMs) { }

    public void Abort()
    {
        Aborted = true;
        _input.Writer.Complete();
        if (Interlocked.Exchange(ref _closed, 1) == 0) _sent.Writer.TryComplete();
    }
}
