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

    /// <summary>Hands a published message to this subscription's sink, or holds it back while a replay runs.</summary>
    public DeliveryOutcome Deliver(SharedMessage message)
    {
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
        return Sink.TryDeliver(this, message);
    }

    /// <summary>From now on live deliveries are held back until <see cref="EndReplay"/> (a SUBSCRIBE with <c>since</c>: the
    /// subscription is in the router before the replay is read, so nothing committed meanwhile can fall in between).</summary>
    public void BeginReplay() => Volatile.Write(ref _held, []);

    /// <summary>Ends the replay: the live messages held back meanwhile go to the sink in arrival order, except those the
    /// replay already gave (id up to <paramref name="lastReplayedId"/>); then delivery is live.</summary>
    public void EndReplay(long lastReplayedId)
    {
        var held = Volatile.Read(ref _held);
        if (held is null) return;
        lock (held)
        {
            foreach (var message in held)
            {
                if (message.Id > lastReplayedId) Sink.TryDeliver(this, message);
            }
            Volatile.Write(ref _held, null);
        }
    }

    /// <summary>Records a delivery that needs an ACK; false when <paramref name="max"/> are already outstanding.</summary>
    public bool TrackDelivery(long messageId, int max)
    {
        if (_unacked is null) return true;
        lock (_unacked)
        {
            if (_unacked.Count >= max) return false;
            _unacked.Add(messageId);
            return true;
        }
    }

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
