using WsBroker.Broker.Destinations;
using WsBroker.Protocol;

namespace WsBroker.Broker.Routing;

/// <summary>One SUBSCRIBE of one session.</summary>
public sealed class Subscription
{
    // Deliveries awaiting an ACK (client ack modes only: an ack:auto subscription, the common case, carries no list and no
    // lock). The list is its own lock.
    private readonly List<long>? _unacked;
    // Live deliveries held back while a `since` replay runs (null: live). The list is its own lock.
    private List<SharedMessage>? _held;
    // A subscription that resumed with `since` (a chat conversation: its ids only increase) drops a delivery whose id is not
    // above the last it had, from the replay or live: a message the replay read whose publish ran late, or one a cluster
    // node published again after taking over from a node that died. -1: not resumed, no check.
    private long _lastId = -1;
    // Set after a cluster backplane gap (Fence): nothing more is delivered.
    private volatile bool _fenced;

    public Subscription(IMessageSink sink, string id, Destination destination, AckMode ack, int number, StompVersion version = StompVersion.V1_2)
    {
        Sink = sink;
        Id = id;
        Destination = destination;
        Ack = ack;
        Number = number;
        if (ack != AckMode.Auto) _unacked = [];
        // The subscription header is the only per-subscriber part of a MESSAGE: escape it once, for the session's version.
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        StompFrameWriter.WriteHeader(writer, "subscription", id, StompFrameWriter.EscapeMode(StompCommand.Message, version));
        HeaderLine = writer.WrittenSpan.ToArray();
    }

    public IMessageSink Sink { get; }
    public string Id { get; }
    public Destination Destination { get; }
    public AckMode Ack { get; }

    /// <summary>Per-session number, part of the <c>ack</c> ids of this subscription.</summary>
    public int Number { get; }

    /// <summary>Told when a message of this subscription reaches the session's user (null: nobody asks).</summary>
    public IDeliveryObserver? Observer { get; init; }

    /// <summary>"subscription:&lt;id&gt;\n", escaped for the session's version.</summary>
    public byte[] HeaderLine { get; }

    /// <summary>Where this subscription sits in its <see cref="TopicRouter"/> slot: the router's own, read and written under
    /// its lock, so that leaving a destination with many subscribers costs O(1).</summary>
    internal int RouterIndex { get; set; } = -1;

    /// <summary>Hands a published message to this subscription's sink, or holds it back while a replay runs.</summary>
    public DeliveryOutcome Deliver(SharedMessage message)
    {
        if (_fenced) return DeliveryOutcome.Queued;                // its client resumes after the gap and reads it then
        var held = Volatile.Read(ref _held);
        if (held is not null)
        {
            lock (held)
            {
                if (ReferenceEquals(_held, held))
                {
                    held.Add(message);
                    return DeliveryOutcome.Queued;
                }
            }
        }
        // EndReplay sets the last id before it ends the hold, so a delivery that passed the hold sees it.
        if (Volatile.Read(ref _lastId) >= 0 && !Advance(message.Id)) return DeliveryOutcome.Queued;   // had it already
        return Sink.TryDeliver(this, message);
    }

    /// <summary>Messages for this subscription may have been missed (the cluster backplane was away): from now on nothing
    /// more is delivered to it, so the last message its client has stays before the gap, and the <c>since</c> the client
    /// resumes with (after its session is closed with ERROR <c>backplane gap</c>) reads what was missed.</summary>
    public void Fence() => _fenced = true;

    /// <summary>Whether <see cref="Fence"/> was called.</summary>
    public bool IsFenced => _fenced;

    /// <summary>From now on live deliveries are held back until <see cref="EndReplay"/> (a SUBSCRIBE with <c>since</c>: the
    /// subscription is in the router before the replay is read, so nothing committed meanwhile can fall in between).</summary>
    public void BeginReplay() => Volatile.Write(ref _held, []);

    /// <summary>Ends the replay: the live messages held back meanwhile go to the sink in arrival order, except those the
    /// replay already gave (id up to <paramref name="lastReplayedId"/>, now or when they arrive later); then delivery is
    /// live.</summary>
    public void EndReplay(long lastReplayedId)
    {
        var held = Volatile.Read(ref _held);
        if (held is null) return;
        lock (held)
        {
            var last = Math.Max(lastReplayedId, 0);
            foreach (var message in held)
            {
                if (message.Id <= last) continue;                  // the replay gave it, or it came twice
                Sink.TryDeliver(this, message);
                last = message.Id;
            }
            if (lastReplayedId != long.MaxValue) Volatile.Write(ref _lastId, last);
            Volatile.Write(ref _held, null);
        }
    }

    // Raises the last id to `id`; false when it was already there or above.
    private bool Advance(long id)
    {
        while (true)
        {
            var last = Volatile.Read(ref _lastId);
            if (id <= last) return false;
            if (Interlocked.CompareExchange(ref _lastId, id, last) == last) return true;
        }
    }

    /// <summary>SUBSCRIBE's <c>prefetch-count</c> (client ack modes): at most this many messages are unacknowledged; later
    /// ones wait here, in order, until ACKs make room (0: no window; <c>Broker:MaxUnacked</c> then cuts a consumer that
    /// never acknowledges).</summary>
    public int Prefetch { get; init; }

    // Messages past the prefetch window, oldest first (guarded by _unacked).
    private Queue<Pending>? _waiting;

    /// <summary>Whether a delivery goes out now, waits for ACKs (prefetch window full), or overflows (the consumer holds
    /// <paramref name="maxUnacked"/> unacknowledged without a window, or <paramref name="maxWaiting"/> are waiting).</summary>
    public Admission Admit(SharedMessage message, bool replay, int maxUnacked, int maxWaiting) =>
        Admit(new Pending(message.Id, message, replay), maxUnacked, maxWaiting);

    private Admission Admit(Pending pending, int maxUnacked, int maxWaiting)
    {
        if (_unacked is null) return Admission.Deliver;
        lock (_unacked)
        {
            if (Prefetch > 0 && pending.Message is not null)
            {
                if ((_waiting?.Count ?? 0) > 0 || _unacked.Count >= Prefetch)
                {
                    if ((_waiting?.Count ?? 0) >= maxWaiting) return Admission.Overflow;
                    (_waiting ??= new Queue<Pending>()).Enqueue(pending);
                    return Admission.Wait;
                }
            }
            else if (_unacked.Count >= maxUnacked) return Admission.Overflow;
            _unacked.Add(pending.Id);
            return Admission.Deliver;
        }
    }

    /// <summary>After an ACK: the next waiting message if the window has room (it is then counted as unacknowledged).</summary>
    public bool TryRelease(out SharedMessage message, out bool replay)
    {
        message = null!;
        replay = false;
        if (_unacked is null) return false;
        lock (_unacked)
        {
            if (_waiting is not { Count: > 0 } || _unacked.Count >= Prefetch) return false;
            var next = _waiting.Dequeue();
            _unacked.Add(next.Id);
            (message, replay) = (next.Message!, next.Replay);
            return true;
        }
    }

    private readonly record struct Pending(long Id, SharedMessage? Message, bool Replay);

    /// <summary>Settles an ACK or NACK: in <c>client</c> mode cumulatively (everything up to the id), else just the id.
    /// False when the id is not outstanding.</summary>
    public bool Settle(long messageId)
    {
        if (_unacked is null) return false;
        lock (_unacked)
        {
            var index = _unacked.IndexOf(messageId);
            if (index < 0) return false;
            if (Ack == AckMode.Client) _unacked.RemoveRange(0, index + 1);
            else _unacked.RemoveAt(index);
            return true;
        }
    }

    public bool IsOutstanding(long messageId)
    {
        if (_unacked is null) return false;
        lock (_unacked) return _unacked.Contains(messageId);
    }
}
