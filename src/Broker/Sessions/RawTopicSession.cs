using System.Buffers;
using System.Globalization;
using System.Text.Json;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// A raw WebSocket "topic URL" (docs/design.md §3): the connection is subscribed to the URL's destination, each text message the
/// client sends is a SEND to it (answered with <c>{"receipt":"n"}</c>, n counting the client's messages from 1, or
/// <c>{"error":"…","receipt":"n"}</c>), and each delivery is one JSON text message. Same pump, router, policy, handlers and
/// limits as STOMP; the transport hands over one whole message per read.
/// </summary>
public sealed class RawTopicSession : BrokerSession
{
    private static readonly StompHeaders s_headers = new StompHeaders().Add("content-type", "text/plain;charset=utf-8");
    private readonly Destination _destination;
    private readonly long? _since;
    private Subscription? _subscription;
    private long _sent;

    /// <param name="since">The URL's <c>?since=</c>: stored messages after that id are replayed first (each JSON with
    /// <c>"replay":true</c>); the endpoint has checked that the destination has a replay source.</param>
    public RawTopicSession(IConnectionTransport transport, BrokerServices services, string sessionId, Destination destination, BrokerPrincipal principal,
        long? since = null)
        : base(transport, services, sessionId)
    {
        _destination = destination;
        _since = since;
        Authenticate(principal);
    }

    public override string Protocol => "raw";

    protected internal override int MessageLimit => Services.Options.MaxBodyBytes;

    protected internal override async ValueTask StartAsync()
    {
        Services.Sessions.Authenticated(this);
        if (await Services.Policy.CanSubscribeAsync(Principal!, _destination) is { } denied)
        {
            CloseWithError(denied, null, DisconnectReason.ProtocolError);
            return;
        }
        _subscription = new Subscription(this, "raw", _destination, AckMode.Auto, 1) { Observer = Services.FindDeliveryObserver(_destination) };
        if (_since is { } since && Services.FindReplaySource(_destination) is { } replay)
            await ReplayHandOff.ResumeAsync(this, _subscription, replay, since, null);
        else Services.Router.Add(_subscription);
    }

    protected internal override async ValueTask<SequencePosition> ReceiveAsync(ReadOnlySequence<byte> message)
    {
        if (IsClosing) return message.End;
        if (message.Length > Services.Options.MaxBodyBytes)
        {
            CloseWithError("message too large", null, DisconnectReason.MessageTooBig);        // close 1009
            return message.End;
        }
        FramesIn++;
        Services.Metrics.FrameReceived(StompCommand.Send);
        await SendAsync(message);
        return message.End;
    }

    private async ValueTask SendAsync(ReadOnlySequence<byte> body)
    {
        var receipt = (++_sent).ToString(CultureInfo.InvariantCulture);
        if (await Services.Policy.CanSendAsync(Principal!, _destination) is { } denied)
        {
            SendUserError(denied, receipt);
            return;
        }
        if (Services.FindSendHandler(_destination) is { } handler)
        {
            await handler.HandleAsync(new SendContext(this, Services.Backplane, Services.Ids, _destination, default, s_headers, body, receipt));
            return;
        }
        Services.Backplane.Publish(SharedMessage.Create(Services.Ids.Next(), _destination.Text, s_headers, body.ToArray(), Principal!.UserId));
        SendReceipt(receipt);
    }

    public override void SendReceipt(string receiptId, long? messageId = null) => TryEnqueueFrame(StompCommand.Receipt, Json(w =>
    {
        w.WriteString("receipt", receiptId);
        if (messageId is { } id) w.WriteString("id", id.ToString(CultureInfo.InvariantCulture));
    }));

    public override void SendUserError(string message, string? receiptId)
    {
        Services.Metrics.Rejection();
        TryEnqueueFrame(StompCommand.Error, Json(w =>
        {
            w.WriteString("error", message);
            if (receiptId is not null) w.WriteString("receipt", receiptId);
        }));
    }

    protected internal override byte[] BuildError(string message, string? receiptId, string? detail) => Json(w => w.WriteString("error", message));

    protected internal override bool EncodeDelivery(Subscription subscription, SharedMessage message, bool replay, IBufferWriter<byte> output)
    {
        // One JSON document per WebSocket message: a batch would glue documents together, so only one per flush. A replayed
        // one says so: the shared document with ,"replay":true before its closing brace.
        var json = message.Json;
        if (!replay) StompFrameWriter.WriteRaw(output, json);
        else
        {
            StompFrameWriter.WriteRaw(output, json[..^1]);
            StompFrameWriter.WriteRaw(output, ",\"replay\":true}"u8);
        }
        return false;
    }

    protected internal override bool OneDeliveryPerMessage => true;

    internal override bool Fence(Func<Destination, bool> predicate)
    {
        if (!predicate(_destination)) return false;
        Volatile.Read(ref _subscription)?.Fence();
        return true;
    }

    protected internal override void ReplayTruncated(Subscription subscription, long next) =>
        TryEnqueueFrame(StompCommand.Message, Json(w =>
        {
            w.WriteString("replay", "truncated");
            w.WriteString("next", next.ToString(CultureInfo.InvariantCulture));
        }));

    protected override void OnClosed()
    {
        if (_subscription is not null) Services.Router.Remove(_subscription);
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            write(json);
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
