using System.Buffers;
using System.Threading.Tasks.Sources;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// The items of an <see cref="Outbox"/> in order: bounded, many writers, one reader (the writer loop). It does what a
/// bounded <c>Channel</c> with <c>SingleReader</c> did for the outbox, in one small object instead of about ten
/// (docs/performance.md, issue 17): a lone item waits in a slot of its own, and the ring's array is rented from the pool
/// only when a second item arrives before the reader took the first (a broadcast to thousands of idle sessions rents none,
/// where the pool's few arrays would have run out at once and the rest been allocated); it goes back when the reader finds
/// the queue empty, so an idle session holds none; the reader does not wait in an async frame either: it leaves a resume
/// callback (<see cref="WaitToRead"/>) and returns, and it takes no cancellation token, so a waiting reader holds no
/// registration: <see cref="Complete"/> ends the wait (an aborted session completes its outbox). A heart-beat is a flag, not
/// an item (<see cref="TryWriteHeartBeat"/>): the one that matters is the one still pending, and it takes no ring, so the
/// scanner's heart-beats to thousands of idle sessions rent (and, past the pool's few, allocate) no arrays.
/// </summary>
internal sealed class OutboxQueue(int capacity)
{
    private const int FirstLength = 16;
    private ManualResetValueTaskSourceCore<bool> _wait = new() { RunContinuationsAsynchronously = true };
    private Outbound _one;                                          // the lone item while there is no ring
    private Outbound[]? _items;                                     // the ring (null while at most one item waits)
    private int _head;
    private int _count;
    private bool _waiting;                                          // the reader waits for an item (the ring is empty)
    private bool _heartBeat;                                        // a heart-beat is due (read after the ring's items)
    private bool _completed;

    // The gate is this object: it is private to its Outbox, and a lock of its own would cost every session an object.
    private object Gate => this;

    /// <summary>Queues <paramref name="item"/>; false when <paramref name="capacity"/> items wait, or after <see cref="Complete"/>.</summary>
    public bool TryWrite(in Outbound item)
    {
        bool wake;
        lock (Gate)
        {
            if (_completed || _count >= capacity) return false;
            Append(item);
            wake = _waiting;
            _waiting = false;
        }
        if (wake) _wait.SetResult(true);
        return true;
    }

    /// <summary>Queues the last items, <paramref name="word"/> (when it has one) and then <paramref name="close"/>, past the
    /// capacity, and completes the queue, all at once: nothing comes between them or after them. False when already
    /// completed (the session is ending another way).</summary>
    public bool TryWriteLast(in Outbound? word, in Outbound close)
    {
        bool wake;
        lock (Gate)
        {
            if (_completed) return false;
            if (word is { } w) Append(w);
            Append(close);
            _completed = true;
            wake = _waiting;
            _waiting = false;
        }
        if (wake) _wait.SetResult(true);
        return true;
    }

    /// <summary>No more writes are taken (<see cref="Complete"/> or <see cref="TryWriteLast"/>): a write refused now was
    /// refused for that, not for a full queue.</summary>
    public bool IsCompleted
    {
        get
        {
            lock (Gate) return _completed;
        }
    }

    private void Append(in Outbound item)
    {
        if (_items is null && _count == 0) _one = item;
        else
        {
            if (_items is null)                                     // a second item: the lone one moves into a ring
            {
                _items = ArrayPool<Outbound>.Shared.Rent(Math.Min(FirstLength, Math.Max(capacity, 2)));
                _items[0] = _one;
                _one = default;
                _head = 0;
            }
            else if (_count == _items.Length) Grow();
            _items[(_head + _count) % _items.Length] = item;
        }
        _count++;
    }

    /// <summary>Asks for a heart-beat; false after <see cref="Complete"/>. Two asks before the reader comes are one.</summary>
    public bool TryWriteHeartBeat()
    {
        bool wake;
        lock (Gate)
        {
            if (_completed) return false;
            _heartBeat = true;
            wake = _waiting;
            _waiting = false;
        }
        if (wake) _wait.SetResult(true);
        return true;
    }

    /// <summary>Nothing waits to be read (no item, no heart-beat).</summary>
    public bool IsEmpty
    {
        get
        {
            lock (Gate) return _count == 0 && !_heartBeat;
        }
    }

    /// <summary>The reader takes the oldest item; a pending heart-beat comes after the items.</summary>
    public bool TryRead(out Outbound item)
    {
        lock (Gate)
        {
            if (_count == 0)
            {
                item = _heartBeat ? Outbound.HeartBeat : default;
                var read = _heartBeat;
                _heartBeat = false;
                return read;
            }
            if (_items is null)
            {
                item = _one;
                _one = default;
                _count = 0;
                return true;
            }
            item = _items[_head];
            _items[_head] = default;                                // the ring goes back to the pool holding nothing
            _head = (_head + 1) % _items.Length;
            _count--;
            return true;
        }
    }

    /// <summary>What the one reader finds: <see cref="OutboxRead.Ready"/> (an item or a heart-beat waits),
    /// <see cref="OutboxRead.Completed"/> (completed and empty: the end), or <see cref="OutboxRead.Waiting"/>: nothing yet,
    /// and <paramref name="resume"/>(<paramref name="state"/>) runs on the thread pool once something comes or the queue is
    /// completed. The reader then holds nothing while it waits: no async frame, no array (the ring goes back to the pool);
    /// after <see cref="OutboxRead.Waiting"/> it returns at once and asks again when resumed.</summary>
    public OutboxRead WaitToRead(Action<object?> resume, object state)
    {
        short version;
        lock (Gate)
        {
            if (_count > 0 || _heartBeat) return OutboxRead.Ready;
            ReturnRing();                                           // empty: the reader goes idle holding no array
            if (_completed) return OutboxRead.Completed;
            _wait.Reset();
            _waiting = true;
            version = _wait.Version;
        }
        // A write or the completion may already have set the result: then the resume is scheduled at once.
        _wait.OnCompleted(resume, state, version, ValueTaskSourceOnCompletedFlags.None);
        return OutboxRead.Waiting;
    }

    /// <summary>No more writes; the reader reads what is queued, then finds <see cref="OutboxRead.Completed"/>.</summary>
    public void Complete()
    {
        bool wake;
        lock (Gate)
        {
            if (_completed) return;
            _completed = true;
            wake = _waiting;                                        // waiting: the ring is empty
            _waiting = false;
        }
        if (wake) _wait.SetResult(false);
    }

    /// <summary>Whether the ring's array is held (tests: an idle queue holds none).</summary>
    internal bool HoldsArray
    {
        get
        {
            lock (Gate) return _items is not null;
        }
    }

    private void Grow()
    {
        var old = _items!;
        var grown = ArrayPool<Outbound>.Shared.Rent(old.Length * 2);
        for (var i = 0; i < _count; i++) grown[i] = old[(_head + i) % old.Length];
        Array.Clear(old);
        ArrayPool<Outbound>.Shared.Return(old);
        _items = grown;
        _head = 0;
    }

    private void ReturnRing()
    {
        if (_items is null) return;
        ArrayPool<Outbound>.Shared.Return(_items);                  // every slot was cleared as it was read
        _items = null;
        _head = 0;
    }
}

/// <summary>What the reader of an <see cref="OutboxQueue"/> finds (<see cref="OutboxQueue.WaitToRead"/>).</summary>
internal enum OutboxRead
{
    Ready,
    Waiting,
    Completed,
}
