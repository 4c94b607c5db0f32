using WsBroker.Broker.Destinations;
using WsBroker.Protocol;

namespace WsBroker.Broker.Routing;

/// <summary>One SUBSCRIBE of one session.</summary>
public sealed class Subscription
{
    // Deliveries awaiting an ACK (client ack modes only: an ack:auto subscription, the common case, carries no list and no
    // lock). The list is its own lock.
    private readonly List<long>? _unacked;

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

    /// <summary>"subscription:&lt;id&gt;\n", escaped for the session's version.</summary>
    public byte[] HeaderLine { get; }

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
