using System.Buffers;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Connections;

/// <summary>
/// A raw WebSocket "topic URL" (DESIGN.md §3): the socket is subscribed to the URL's destination, each text message the
/// client sends is a SEND to it (answered with <c>{"receipt":"n"}</c>, n counting the client's messages from 1, or
/// <c>{"error":"…","receipt":"n"}</c>), and each delivery is one JSON text message. Same router, ACL, handlers and limits.
/// </summary>
public sealed class RawTopicConnection : BrokerConnection
{
    private readonly string _destination;
    private Subscription? _subscription;
    private long _sent;

    public RawTopicConnection(WebSocket socket, BrokerServices services, string sessionId, string destination, BrokerPrincipal principal)
        : base(socket, services, sessionId)
    {
        _destination = destination;
        Principal = principal;
    }

    public override string Protocol => "raw";

    protected override async Task ReadLoopAsync()
    {
        Services.Sessions.Authenticated(this);
        if (await Services.Policy.CanSubscribeAsync(Principal!, _destination) is { } denied)
        {
            CloseWithError(denied, null, DisconnectReason.ProtocolError);
            return;
        }
        _subscription = new Subscription(this, "raw", _destination, AckMode.Auto, 1);
        Services.Router.Add(_subscription);
        var max = Services.Options.MaxBodyBytes;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(max + 1, 16 * 1024));
        try
        {
            while (!IsClosing)
            {
                var length = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    if (length == buffer.Length)
                    {
                        if (length > max)
                        {
                            CloseWithError("message too large", null, DisconnectReason.ProtocolError);
                            return;
                        }
                        var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, max + 1));
                        buffer.AsSpan(0, length).CopyTo(bigger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = bigger;
                    }
                    result = await Socket.ReceiveAsync(buffer.AsMemory(length), Aborted);
                    if (result.MessageType == WebSocketMessageType.Close) return;
                    length += result.Count;
                    Touch();
                }
                while (!result.EndOfMessage);
                if (length > max)
                {
                    CloseWithError("message too large", null, DisconnectReason.ProtocolError);
                    return;
                }
                Services.Metrics.BytesReceived(length);
                FramesIn++;
                Services.Metrics.FrameReceived(WsBroker.Protocol.StompCommand.Send);
                await SendAsync(buffer.AsMemory(0, length).ToArray());
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async ValueTask SendAsync(byte[] body)
    {
        var receipt = (++_sent).ToString(CultureInfo.InvariantCulture);
        if (_destination.AsSpan().IndexOfAny('*', '#') >= 0)
        {
            SendUserError("could-not-send-message: cannot send to a wildcard destination", receipt);
            return;
        }
        if (await Services.Policy.CanSendAsync(Principal!, _destination) is { } denied)
        {
            SendUserError(denied, receipt);
            return;
        }
        var handler = Services.FindSendHandler(_destination);
        var headers = new WsBroker.Protocol.StompHeaders().Add("content-type", "text/plain;charset=utf-8");
        if (handler is not null)
        {
            await handler.HandleAsync(new SendContext(this, Services, _destination, headers, body, receipt));
            return;
        }
        Services.Publish(SharedMessage.Create(Services.Ids.Next(), _destination, headers, new ReadOnlySequence<byte>(body), Principal!.UserId));
        SendReceipt(receipt);
    }

    public override void SendReceipt(string receiptId) => TryEnqueueFrame(Json(w => w.WriteString("receipt", receiptId)));

    public override void SendUserError(string message, string? receiptId)
    {
        Services.Metrics.Rejection();
        TryEnqueueFrame(Json(w =>
        {
            w.WriteString("error", message);
            if (receiptId is not null) w.WriteString("receipt", receiptId);
        }));
    }

    protected override byte[] BuildError(string message, string? receiptId, string? detail) => Json(w => w.WriteString("error", message));

    protected override bool EncodeDelivery(Subscription subscription, SharedMessage message, IBufferWriter<byte> output)
    {
        // One JSON document per WebSocket message: a batch would glue documents together, so only one per flush.
        WsBroker.Protocol.StompFrameWriter.WriteRaw(output, message.Json);
        return false;
    }

    protected override bool OneDeliveryPerMessage => true;

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

    internal static string Text(ReadOnlySpan<byte> utf8) => Encoding.UTF8.GetString(utf8);
}
