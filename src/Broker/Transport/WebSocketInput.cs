using System.Buffers;
using System.IO.Pipelines;
using System.Net.WebSockets;

namespace WsBroker.Broker.Transport;

/// <summary>
/// A <see cref="PipeReader"/> over a <see cref="WebSocket"/>'s messages. It waits for data with a zero-byte receive, so an
/// idle connection holds no receive buffer; a pipe is borrowed from <see cref="PipePool"/> while bytes are in flight and
/// given back as soon as the reader has consumed everything. In message mode (<c>messageLimit</c> &gt; 0) one read
/// returns exactly one whole message, or the first <c>messageLimit + 1</c> bytes of a larger one (the reader refuses it).
/// </summary>
internal sealed class WebSocketInput(WebSocket socket, int messageLimit) : PipeReader
{
    private Pipe? _pipe;
    private ReadOnlySequence<byte> _last;
    private long _pendingSinceMs;
    private bool _completed;

    /// <summary>Since when bytes have waited unconsumed (0: none).</summary>
    public long PendingSinceMs => Volatile.Read(ref _pendingSinceMs);

    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (_completed) return new ReadResult(default, isCanceled: false, isCompleted: true);
        if (_pipe is null)
        {
            // Zero-byte read first: wait for data without holding a buffer.
            var probe = await socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken);
            if (probe.MessageType == WebSocketMessageType.Close) return End();
            _pipe = PipePool.Rent();
        }
        long messageBytes = 0;
        while (true)
        {
            var memory = _pipe.Writer.GetMemory(1);
            var received = await socket.ReceiveAsync(memory, cancellationToken);
            if (received.MessageType == WebSocketMessageType.Close) return End();
            _pipe.Writer.Advance(received.Count);
            messageBytes += received.Count;
            // Message mode reads on to the end of the message (or past the limit, which the reader refuses).
            if (messageLimit > 0 && !received.EndOfMessage && messageBytes <= messageLimit) continue;
            await _pipe.Writer.FlushAsync(cancellationToken);
            _pipe.Reader.TryRead(out var result);
            _last = result.Buffer;
            return result;
        }
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_pipe is null) return;
        if (consumed.Equals(_last.End))
        {
            PipePool.Return(_pipe);                  // nothing half-read: give the pipe and its memory back
            _pipe = null;
            _last = default;
            Volatile.Write(ref _pendingSinceMs, 0);
            return;
        }
        // A frame left unfinished: its clock starts when it began, i.e. now unless the reader made no progress at all
        // (then the same frame is still waiting since the last read).
        if (Volatile.Read(ref _pendingSinceMs) == 0 || !consumed.Equals(_last.Start))
            Volatile.Write(ref _pendingSinceMs, Environment.TickCount64);
        _pipe.Reader.AdvanceTo(consumed, examined);
    }

    public override bool TryRead(out ReadResult result)
    {
        result = default;
        return false;                                 // every read waits for new bytes from the socket
    }

    // Nothing in the broker cancels a read without ending the connection: aborting the socket ends the pending read.
    public override void CancelPendingRead() => socket.Abort();

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        if (_pipe is null) return;
        _pipe.Reader.Complete();
        _pipe.Writer.Complete();
        _pipe = null;                                 // a pipe with a half-read frame is not reused
        Volatile.Write(ref _pendingSinceMs, 0);
    }

    // The client closed: a trailing partial frame dies with the connection.
    private ReadResult End()
    {
        Complete();
        return new ReadResult(default, isCanceled: false, isCompleted: true);
    }
}
