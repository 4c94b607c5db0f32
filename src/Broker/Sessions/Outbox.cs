using System.Threading.Channels;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// A session's bounded queue of what is to be written: at most <c>frames</c> items and <c>bytes</c> bytes of frames and
/// deliveries. Writing never blocks; a write that does not fit fails, and the session treats that as a slow consumer.
/// Control items (ERROR, close, heart-beat) are not counted against the byte bound.
/// <para>A struct kept in a (non-readonly) field of its session, so an idle session pays for no extra object: use it only
/// through that field, never through a copy.</para>
/// </summary>
internal struct Outbox(int frames, int bytes)
{
    private readonly Channel<Outbound> _channel = Channel.CreateBounded<Outbound>(new BoundedChannelOptions(frames)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,                  // TryWrite fails when full: the slow-consumer signal
    });
    private readonly int _bytes = bytes;
    private long _queuedBytes;
    private int _slow;

    public bool IsSlow => Volatile.Read(ref _slow) != 0;

    /// <summary>Bytes of frames and deliveries waiting.</summary>
    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    public bool TryWrite(in Outbound item)
    {
        if (Interlocked.Add(ref _queuedBytes, item.Size) > _bytes || !_channel.Writer.TryWrite(item))
        {
            Interlocked.Add(ref _queuedBytes, -item.Size);
            return false;
        }
        return true;
    }

    public readonly bool TryWriteControl(in Outbound item) => _channel.Writer.TryWrite(item with { Counted = false });

    public bool TryRead(out Outbound item)
    {
        if (!_channel.Reader.TryRead(out item)) return false;
        if (item.Counted) Interlocked.Add(ref _queuedBytes, -item.Size);
        return true;
    }

    public readonly ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken) => _channel.Reader.WaitToReadAsync(cancellationToken);

    /// <summary>No more writes: the reader drains what is queued, then ends.</summary>
    public readonly void Complete() => _channel.Writer.TryComplete();

    /// <summary>True the first time: the session is a slow consumer and its backlog is to be discarded.</summary>
    public bool MarkSlow() => Interlocked.Exchange(ref _slow, 1) == 0;
}
