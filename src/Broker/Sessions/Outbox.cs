namespace WsBroker.Broker.Sessions;

/// <summary>
/// A session's queue of what is to be written, with two marks (docs/design.md §3). Above the high-water mark
/// (<c>Broker:OutboundQueueFrames</c> / <c>Broker:OutboundQueueBytes</c>) the session asks its publishers to wait until it
/// is back under the low-water mark (half of high water); at the hard cap (<c>Broker:OutboundQueueHardCapFrames</c> /
/// <c>…HardCapBytes</c>) a write fails, and the session treats that as a slow consumer. Writing never blocks. Control items
/// (ERROR, close, heart-beat) count against neither mark nor the byte cap. The publishers waiting for the drain wait here
/// (<see cref="WhenDrained"/>): the writer releases them once it has read the queue under the low-water mark, and
/// <see cref="Complete"/> releases them for good. The items wait in an <see cref="OutboxQueue"/>, which holds no array while
/// the session is idle.
/// <para>A struct kept in a (non-readonly) field of its session, so an idle session pays for no extra object: use it only
/// through that field, never through a copy.</para>
/// </summary>
internal struct Outbox(int highFrames, int highBytes, int capFrames, int capBytes)
{
    private readonly OutboxQueue _queue = new(capFrames);        // TryWrite fails when full: the hard cap
    private readonly int _highFrames = highFrames;
    private readonly int _highBytes = highBytes;
    private readonly int _capBytes = capBytes;
    private long _queuedBytes;
    private int _queuedFrames;
    private int _slow;
    private TaskCompletionSource? _drained;                       // publishers waiting for the drain (null: none)

    public bool IsSlow => Volatile.Read(ref _slow) != 0;

    /// <summary>Bytes of frames and deliveries waiting.</summary>
    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>Frames and deliveries waiting (control items not counted).</summary>
    public int QueuedFrames => Volatile.Read(ref _queuedFrames);

    /// <summary>Above the high-water mark: whoever queued into it should wait for <see cref="IsBelowLowWater"/>.</summary>
    public bool IsAboveHighWater => QueuedFrames > _highFrames || QueuedBytes > _highBytes;

    /// <summary>At or under half of the high-water mark, in frames and in bytes.</summary>
    public bool IsBelowLowWater => QueuedFrames <= _highFrames / 2 && QueuedBytes <= _highBytes / 2;

    /// <summary>Queues a frame or delivery; false at the hard cap (or once completed).</summary>
    public bool TryWrite(in Outbound item)
    {
        Interlocked.Increment(ref _queuedFrames);
        if (Interlocked.Add(ref _queuedBytes, item.Size) > _capBytes || !_queue.TryWrite(item))
        {
            Interlocked.Add(ref _queuedBytes, -item.Size);
            Interlocked.Decrement(ref _queuedFrames);
            return false;
        }
        return true;
    }

    /// <summary>Queues the session's last word (an ERROR, or nothing) and the close after it, whatever the queue holds, and
    /// completes the outbox: nothing is queued between them or after them. False when already completed. The publishers
    /// waiting for its drain are the caller's to release (<see cref="ReleaseDrained"/>), once the session shows it closes.</summary>
    public readonly bool TryWriteLast(in Outbound? word) =>
        _queue.TryWriteLast(word is { } w ? w with { Counted = false } : null, Outbound.Close);

    /// <summary>Takes no more writes: a write refused now was not refused for a full queue.</summary>
    public readonly bool IsCompleted => _queue.IsCompleted;

    /// <summary>Asks the writer for a heart-beat (a flag: it takes no slot of the ring); false once completed.</summary>
    public readonly bool TryWriteHeartBeat() => _queue.TryWriteHeartBeat();

    /// <summary>Nothing waits for the writer.</summary>
    public readonly bool IsEmpty => _queue.IsEmpty;

    public bool TryRead(out Outbound item)
    {
        if (!_queue.TryRead(out item)) return false;
        if (item.Counted)
        {
            Interlocked.Add(ref _queuedBytes, -item.Size);
            Interlocked.Decrement(ref _queuedFrames);
        }
        return true;
    }

    /// <summary>Whether something is queued, the outbox is completed and drained, or neither yet: then
    /// <paramref name="resume"/> runs once it is (<see cref="OutboxQueue.WaitToRead"/>). No token: <see cref="Complete"/> ends
    /// the wait (an aborted session completes its outbox), so an idle writer holds no cancellation registration.</summary>
    public readonly OutboxRead WaitToRead(Action<object?> resume, object state) => _queue.WaitToRead(resume, state);

    /// <summary>No more writes: the reader drains what is queued, then ends. Nobody waits for the drain any more (a
    /// closing session holds no publisher).</summary>
    public void Complete()
    {
        _queue.Complete();
        ReleaseDrained();
    }

    /// <summary>Completes once the queue is at or under its low-water mark (or <see cref="ReleaseDrained"/> is called).
    /// Allocates only when it has to wait.</summary>
    public Task WhenDrained()
    {
        if (IsBelowLowWater) return Task.CompletedTask;
        var drained = Volatile.Read(ref _drained);
        if (drained is null)
        {
            var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            drained = Interlocked.CompareExchange(ref _drained, fresh, null) ?? fresh;
        }
        // The writer may have drained between the check and the exchange, seeing no waiter.
        if (IsBelowLowWater) ReleaseDrained();
        return drained.Task;
    }

    /// <summary>Releases the publishers waiting for the drain.</summary>
    public void ReleaseDrained() => Interlocked.Exchange(ref _drained, null)?.TrySetResult();

    /// <summary>Releases the publishers waiting for the drain if the queue is under its low-water mark (the writer, after
    /// each batch it read).</summary>
    public void ReleaseDrainedIfBelowLowWater()
    {
        if (Volatile.Read(ref _drained) is not null && IsBelowLowWater) ReleaseDrained();
    }

    /// <summary>True the first time: the session is a slow consumer and its backlog is to be discarded.</summary>
    public bool MarkSlow() => Interlocked.Exchange(ref _slow, 1) == 0;
}
