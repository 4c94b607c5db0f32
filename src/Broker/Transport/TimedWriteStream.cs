namespace WsBroker.Broker.Transport;

/// <summary>
/// The upgraded connection's stream under an ASP.NET Core <see cref="System.Net.WebSockets.WebSocket"/>, timing its writes.
/// That socket writes its pongs and close replies from inside a receive, on no clock of the session's: a client that pings
/// and never reads would park the session's read loop in such a write for good. <see cref="WebSocketTransport"/> drops a
/// connection whose write has been pending for longer than <c>Broker:SlowConsumerMs</c>. The socket sends one frame at a
/// time, so one field says whether a write is pending, and since when.
/// </summary>
public sealed class TimedWriteStream(Stream inner) : Stream
{
    private long _writingSinceMs;                                // Environment.TickCount64 when the pending write began; 0: none

    /// <summary>When the pending write began (<see cref="Environment.TickCount64"/>), 0 when none is pending.</summary>
    public long WritingSinceMs => Volatile.Read(ref _writingSinceMs);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        Timed(inner.WriteAsync(buffer, cancellationToken));

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Timed(new ValueTask(inner.FlushAsync(cancellationToken))).AsTask();

    private ValueTask Timed(ValueTask write)
    {
        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult();                      // releases a pooled source
            return default;
        }
        Volatile.Write(ref _writingSinceMs, Environment.TickCount64);
        return AwaitedAsync(write);
    }

    private async ValueTask AwaitedAsync(ValueTask write)
    {
        try
        {
            await write.ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _writingSinceMs, 0);
        }
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        inner.ReadAsync(buffer, offset, count, cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override void Flush() => inner.Flush();

    public override bool CanRead => inner.CanRead;
    public override bool CanWrite => inner.CanWrite;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync() => inner.DisposeAsync();
}
