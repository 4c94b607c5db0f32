using System.Buffers;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// What one flush of a session's writer loop holds: the <see cref="Outbox"/> items encoded one after another into the
/// transport message being built (whole frames only), what they count as, and the deliveries to report once the message
/// is sent. A local of the writer loop: it costs an idle session nothing.
/// </summary>
internal struct OutboundBatch
{
    public int Frames;
    public int Others;                                           // frames that are not MESSAGE
    public bool Binary;
    private List<(IDeliveryObserver Observer, long MessageId)>? _observed;   // deliveries to report once written

    /// <summary>Writes one outbox item in <paramref name="session"/>'s wire format; true for the close marker.</summary>
    public bool Add(in Outbound item, IBufferWriter<byte> buffer, BrokerSession session)
    {
        switch (item.Kind)
        {
            case OutboundKind.Delivery:
                Binary |= session.EncodeDelivery(item.Subscription!, item.Message!, item.Replay, buffer);
                Frames++;
                // Under ack:auto a message has reached its recipient once written; the observer is told after the send.
                if (item.Subscription!.Observer is { } observer && item.Subscription.Ack == AckMode.Auto && session.Principal is { } user
                    && item.Message!.Receiver == user.UserId)
                    (_observed ??= []).Add((observer, item.Message.Id));
                return false;
            case OutboundKind.Frame:
                StompFrameWriter.WriteRaw(buffer, item.Bytes.AsSpan(0, item.Length));
                if (item.Pooled) ArrayPool<byte>.Shared.Return(item.Bytes!);
                Binary |= item.Binary;
                Frames++;
                if (item.Command != StompCommand.Message)
                {
                    session.Services.Metrics.FrameSent(item.Command);
                    Others++;
                }
                return false;
            case OutboundKind.HeartBeat:
                if (Frames == 0 && session.Protocol == "stomp") StompFrameWriter.WriteHeartBeat(buffer);
                return false;
            default:
                return true;
        }
    }

    /// <summary>The batch went out as one message of <paramref name="bytes"/>: counts it (MESSAGE once per flush; the rare
    /// others as they were encoded) and tells the observers their deliveries were written.</summary>
    public readonly void Sent(int bytes, BrokerSession session)
    {
        session.Services.Metrics.FramesSent(Frames, bytes, messages: Frames - Others);
        session.CountFramesOut(Frames);
        if (_observed is { } observed)
        {
            foreach (var (observer, messageId) in observed) observer.Delivered(messageId, session.Principal!.UserId);
        }
    }
}
