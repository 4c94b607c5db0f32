using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.IO.Pipelines;
using System.Net.WebSockets;
using System.Text;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Connections;

/// <summary>
/// A STOMP session over one WebSocket. Bytes of text and binary messages alike flow into a pipe and through one
/// <see cref="StompFrameParser"/>, so frames may span messages and one message may carry several frames. The
/// <see cref="StompStateMachine"/> judges every frame first; then the frame is routed, and its replies are queued.
/// </summary>
public sealed partial class StompConnection : BrokerConnection
{
    private readonly StompFrameParser _parser;
    private readonly StompStateMachine _state;
    private readonly string? _queryToken;
    private readonly Dictionary<string, Subscription> _subscriptions = new(StringComparer.Ordinal);
    private readonly List<Subscription> _userQueue = [];
    private readonly Lock _subscriptionsGate = new();
    private Dictionary<string, List<StompFrame>>? _transactions;
    private readonly List<Task> _unanswered = [];
    private long _noNulScanned;                                  // leading bytes of the unfinished frame known to hold no NUL
    private int _partialParses;                                  // parses of the unfinished frame that needed more data

    /// <summary>Parses of one unfinished frame before the connection is closed (plus one per 512 bytes of the frame limit, so
    /// a large binary body read in 2 KiB pieces is never refused). A frame parsed again on every piece that arrives costs
    /// its header size per piece; a frame trickled in a byte at a time would cost its size squared.</summary>
    private const int MaxPartialParses = 4096;
    private int _nextSubscriptionNumber;

    public StompConnection(WebSocket socket, BrokerServices services, string sessionId, string? queryToken)
        : base(socket, services, sessionId)
    {
        _parser = new StompFrameParser(services.Limits);
        _state = new StompStateMachine(services.ServerHeartBeat);
        _queryToken = queryToken;
    }

    public override string Protocol => "stomp";

    public StompVersion Version => _state.Version;

    public int SubscriptionCount
    {
        get { lock (_subscriptionsGate) return _subscriptions.Count; }
    }

    protected override async Task ReadLoopAsync()
    {
        // Bytes of text and binary messages alike go into a pipe; the parser reads frames from it, so frames may span
        // messages and a message may carry several. The pipe is borrowed from a pool while bytes are in flight and given
        // back when everything read has been consumed: an idle connection holds neither a pipe nor a buffer.
        Pipe? pipe = null;
        try
        {
            while (!IsClosing)
            {
                // Zero-byte read first: wait for data without holding a receive buffer.
                var probe = await Socket.ReceiveAsync(Memory<byte>.Empty, Aborted);
                if (probe.MessageType == WebSocketMessageType.Close) return;
                pipe ??= PipePool.Rent();
                var memory = pipe.Writer.GetMemory(1);
                var received = await Socket.ReceiveAsync(memory, Aborted);
                if (received.MessageType == WebSocketMessageType.Close) return;
                pipe.Writer.Advance(received.Count);
                Touch();
                Services.Metrics.BytesReceived(received.Count);
                await pipe.Writer.FlushAsync(Aborted);
                if (!pipe.Reader.TryRead(out var read)) continue;
                var buffer = read.Buffer;
                try
                {
                    while (!IsClosing)
                    {
                        if (!MayHoldFrame(buffer)) break;
                        var status = _parser.TryParse(ref buffer, out var error);
                        if (status == OperationStatus.NeedMoreData)
                        {
                            _noNulScanned = buffer.Length;               // NULs seen so far did not end it (a content-length body)
                            if (buffer.IsEmpty) _partialParses = 0;
                            else if (++_partialParses > MaxPartialParses + Services.Options.MaxFrameBytes / 512)
                            {
                                ProtocolError("frame sent in too many pieces", null);
                                return;
                            }
                            break;
                        }
                        _noNulScanned = 0;
                        _partialParses = 0;
                        if (status == OperationStatus.InvalidData)
                        {
                            ProtocolError(error.ToMessage(), _parser.ReceiptOfInvalidFrame);
                            return;
                        }
                        FramesIn++;
                        Services.Metrics.FrameReceived(_parser.Frame.Command);
                        var handled = HandleFrameAsync(_parser.Frame);
                        if (!handled.IsCompletedSuccessfully)
                        {
                            // The client's heart-beats are not read meanwhile: its silence is not its fault.
                            Interlocked.Increment(ref HandlersRunning);
                            try { await handled; }
                            finally { Interlocked.Decrement(ref HandlersRunning); Touch(); }
                        }
                    }
                }
                finally
                {
                    // consumed = start of the unfinished frame; examined = all of it.
                    pipe.Reader.AdvanceTo(buffer.Start, buffer.End);
                }
                if (buffer.IsEmpty)
                {
                    PipePool.Return(pipe);                         // nothing half-read: give the pipe and its memory back
                    pipe = null;
                }
            }
        }
        finally
        {
            if (pipe is not null)
            {
                await pipe.Reader.CompleteAsync();
                await pipe.Writer.CompleteAsync();
            }
        }
    }

    private ValueTask HandleFrameAsync(StompFrameView frame)
    {
        var verdict = _state.Accept(frame);
        if (!verdict.IsAccepted)
        {
            ProtocolError(verdict.Error!, ReceiptOf(frame));
            return ValueTask.CompletedTask;
        }
        switch (frame.Command)
        {
            case StompCommand.Connect or StompCommand.Stomp: return ConnectAsync(frame);
            case StompCommand.Send: return SendAsync(frame, ReceiptOf(frame));
            case StompCommand.Subscribe: return SubscribeAsync(frame);
            case StompCommand.Unsubscribe: Unsubscribe(frame); break;
            case StompCommand.Ack or StompCommand.Nack: AckOrNack(frame); break;
            case StompCommand.Begin or StompCommand.Commit or StompCommand.Abort: return TransactionAsync(frame);
            case StompCommand.Disconnect: return DisconnectAsync(ReceiptOf(frame));
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Whether parsing <paramref name="buffer"/> can produce anything: every frame ends with a NUL, so until one has
    /// arrived only heart-beat EOLs (to consume) or an over-limit buffer (to reject) need the parser. Only the bytes new
    /// since the last look are searched, so a frame trickling in costs linear time, not quadratic.
    /// </summary>
    private bool MayHoldFrame(in ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsEmpty) return false;
        if (buffer.FirstSpan[0] is (byte)'\n' or (byte)'\r' || buffer.Length > Services.Options.MaxFrameBytes) return true;
        if (_noNulScanned > buffer.Length) _noNulScanned = 0;
        if (buffer.Slice(_noNulScanned).PositionOf((byte)0) is not null) return true;
        _noNulScanned = buffer.Length;
        return false;
    }

    // ---- CONNECT ------------------------------------------------------------------------------------------------------

    private async ValueTask ConnectAsync(StompFrameView frame)
    {
        var receipt = ReceiptOf(frame);
        var login = frame.GetHeaderString("login"u8);
        string? token = null;
        if (frame.TryGetHeader("Authorization"u8, out var authorization) || frame.TryGetHeader("authorization"u8, out authorization))
        {
            var text = Encoding.UTF8.GetString(authorization);
            token = text.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? text[7..].Trim() : null;
        }
        token ??= frame.GetHeaderString("passcode"u8) ?? _queryToken;
        var (principal, error) = await Services.Jwt.ValidateAsync(token);
        if (principal is null)
        {
            Services.Metrics.AuthenticationFailure();
            CloseWithError("authentication failed: " + error, receipt, DisconnectReason.AuthenticationFailed);
            return;
        }
        if (!string.IsNullOrEmpty(login) && login != principal.UserId)
        {
            Services.Metrics.AuthenticationFailure();
            CloseWithError("authentication failed: login does not match the token", receipt, DisconnectReason.AuthenticationFailed);
            return;
        }
        if (await Services.Policy.CanConnectAsync(principal) is { } refused)
        {
            Services.Metrics.AuthenticationFailure();
            CloseWithError(refused, receipt, DisconnectReason.AuthenticationFailed);
            return;
        }
        Principal = principal;
        _parser.Version = _state.Version;
        (HeartBeatSendMs, HeartBeatReceiveMs) = _state.HeartBeat;
        var output = new ArrayBufferWriter<byte>(256);
        StompFrameWriter.WriteCommand(output, StompCommand.Connected);
        StompFrameWriter.WriteHeader(output, "version", _state.Version.ToHeaderValue(), StompEscaping.None);
        if (_state.Version != StompVersion.V1_0)
            StompFrameWriter.WriteHeader(output, "heart-beat", Services.ServerHeartBeat.ToString(), StompEscaping.None);
        StompFrameWriter.WriteHeader(output, "session", SessionId, StompEscaping.None);
        StompFrameWriter.WriteHeader(output, "server", Services.Options.ServerName, StompEscaping.None);
        StompFrameWriter.WriteHeader(output, "user-name", Sanitize(principal.UserId), StompEscaping.None);
        if (receipt is not null) StompFrameWriter.WriteHeader(output, "receipt-id", Sanitize(receipt), StompEscaping.None);
        StompFrameWriter.WriteBodyAndEnd(output, ReadOnlySpan<byte>.Empty, writeContentLength: false);
        TryEnqueueFrame(output.WrittenSpan.ToArray());
        Services.Sessions.Authenticated(this);
    }

    // CONNECTED headers are never escaped: keep CR, LF and ':' out of them.
    private static string Sanitize(string value) => value.AsSpan().IndexOfAny("\r\n:") < 0 ? value : value.Replace("\r", "").Replace("\n", "").Replace(":", "");

    // ---- SEND ---------------------------------------------------------------------------------------------------------

    private async ValueTask SendAsync(StompFrameView frame, string? receipt)
    {
        var destination = DestinationOf(frame);
        if (frame.TryGetHeader("transaction"u8, out var tx))
        {
            if (!TryBuffer(Encoding.UTF8.GetString(tx), frame, receipt)) return;
            // A stored destination answers only once the message is committed to the database, i.e. after COMMIT;
            // anything else is answered now that the broker holds it.
            if (receipt is not null && !IsStored(destination)) SendReceipt(receipt);
            return;
        }
        await SendNowAsync(destination, frame, null, receipt);
    }

    /// <summary>Routes a SEND, from the wire (<paramref name="frame"/>) or from a committed transaction (<paramref name="owned"/>).</summary>
    private async ValueTask SendNowAsync(string destination, StompFrameView frame, StompFrame? owned, string? receipt)
    {
        var invalid = TopicRouter.ValidatePattern(destination)
            ?? (destination.AsSpan().IndexOfAny('*', '#') >= 0 ? "cannot send to a wildcard destination" : null);
        if (invalid is not null)
        {
            SendUserError("could-not-send-message: " + invalid, receipt);
            return;
        }
        if (destination.StartsWith("/user/", StringComparison.Ordinal))
        {
            SendUserError("could-not-send-message: /user destinations are written by the broker only", receipt);
            return;
        }
        var denied = await Services.Policy.CanSendAsync(Principal!, destination);
        if (denied is not null)
        {
            SendUserError(denied, receipt);
            return;
        }
        var handler = Services.FindSendHandler(destination);
        if (handler is not null)
        {
            var source = owned ?? frame.ToFrame();
            var context = new SendContext(this, Services, destination, source.Headers, source.Body.ToArray(), receipt);
            await handler.HandleAsync(context);
            Track(context.Answered);
            return;
        }
        var id = Services.Ids.Next();
        var message = owned is null
            ? SharedMessage.FromSend(id, destination, frame, Principal!.UserId)
            : SharedMessage.Create(id, destination, owned.Headers, new ReadOnlySequence<byte>(owned.Body), Principal!.UserId);
        Services.Publish(message);
        if (receipt is not null) SendReceipt(receipt);
    }

    // ---- SUBSCRIBE / UNSUBSCRIBE --------------------------------------------------------------------------------------

    private async ValueTask SubscribeAsync(StompFrameView frame)
    {
        var receipt = ReceiptOf(frame);
        var destination = DestinationOf(frame);
        var id = frame.GetHeaderString("id"u8) ?? destination;   // STOMP 1.0: id is optional
        var ack = AckMode.Auto;
        if (frame.TryGetHeader("ack"u8, out var ackText))
            ack = ackText.SequenceEqual("client"u8) ? AckMode.Client : ackText.SequenceEqual("client-individual"u8) ? AckMode.ClientIndividual : AckMode.Auto;
        if (TopicRouter.ValidatePattern(destination) is { } invalid)
        {
            ProtocolError("invalid destination: " + invalid, receipt);
            return;
        }
        if (!destination.StartsWith("/topic/", StringComparison.Ordinal) && !destination.StartsWith("/queue/", StringComparison.Ordinal)
            && !destination.StartsWith("/user/queue/", StringComparison.Ordinal))
        {
            ProtocolError("unknown destination: use /topic/..., /queue/... or /user/queue/...", receipt);
            return;
        }
        var denied = await Services.Policy.CanSubscribeAsync(Principal!, destination);
        if (denied is not null)
        {
            ProtocolError(denied, receipt);
            return;
        }
        Subscription subscription;
        lock (_subscriptionsGate)
        {
            if (_subscriptions.ContainsKey(id))
            {
                ProtocolError("duplicate subscription id", receipt);
                return;
            }
            if (_subscriptions.Count >= Services.Options.MaxSubscriptionsPerSession)
            {
                ProtocolError("too many subscriptions", receipt);
                return;
            }
            subscription = new Subscription(this, id, destination, ack, ++_nextSubscriptionNumber, _state.Version);
            _subscriptions[id] = subscription;
            if (destination.StartsWith("/user/", StringComparison.Ordinal)) _userQueue.Add(subscription);
        }
        // /user/queue/... reaches only this session: it never enters the shared router.
        if (!destination.StartsWith("/user/", StringComparison.Ordinal)) Services.Router.Add(subscription);
        if (receipt is not null) SendReceipt(receipt);
    }

    private void Unsubscribe(StompFrameView frame)
    {
        var receipt = ReceiptOf(frame);
        var id = frame.GetHeaderString("id"u8) ?? frame.GetHeaderString("destination"u8)!;
        Subscription? subscription;
        lock (_subscriptionsGate)
        {
            if (_subscriptions.Remove(id, out subscription)) _userQueue.Remove(subscription);
        }
        if (subscription is null)
        {
            ProtocolError("unknown subscription id", receipt);
            return;
        }
        Services.Router.Remove(subscription);
        if (receipt is not null) SendReceipt(receipt);
    }

    // ---- ACK / NACK ---------------------------------------------------------------------------------------------------

    private void AckOrNack(StompFrameView frame)
    {
        var receipt = ReceiptOf(frame);
        if (frame.TryGetHeader("transaction"u8, out var tx))
        {
            if (TryBuffer(Encoding.UTF8.GetString(tx), frame, receipt) && receipt is not null) SendReceipt(receipt);
            return;
        }
        if (!Settle(frame.ToFrame().Headers, out var error))
        {
            ProtocolError(error!, receipt);
            return;
        }
        if (receipt is not null) SendReceipt(receipt);
    }

    // Finds the delivery an ACK/NACK names: STOMP 1.2 by the `ack` id we gave ("<message-id>-<subscription number>"),
    // 1.1 by message-id and subscription, 1.0 by message-id alone. Since deliveries are not redelivered, NACK settles too.
    private bool Settle(StompHeaders headers, out string? error)
    {
        error = null;
        Subscription? subscription = null;
        long messageId;
        if (_state.Version == StompVersion.V1_2)
        {
            var id = headers["id"] ?? "";
            var dash = id.LastIndexOf('-');
            if (dash <= 0 || !long.TryParse(id.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out messageId)
                || !int.TryParse(id.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var number))
            {
                error = "unknown ack id";
                return false;
            }
            lock (_subscriptionsGate) subscription = _subscriptions.Values.FirstOrDefault(s => s.Number == number);
        }
        else
        {
            if (!long.TryParse(headers["message-id"], NumberStyles.None, CultureInfo.InvariantCulture, out messageId))
            {
                error = "unknown message-id";
                return false;
            }
            lock (_subscriptionsGate)
            {
                subscription = headers["subscription"] is { } sub
                    ? _subscriptions.GetValueOrDefault(sub)
                    : _subscriptions.Values.FirstOrDefault(s => s.IsOutstanding(messageId));
            }
        }
        if (subscription is null || !subscription.Settle(messageId))
        {
            error = "unknown ack id";
            return false;
        }
        return true;
    }

    // ---- transactions -------------------------------------------------------------------------------------------------

    private bool TryBuffer(string transaction, StompFrameView frame, string? receipt)
    {
        if (_transactions is null || !_transactions.TryGetValue(transaction, out var frames))
        {
            ProtocolError("unknown transaction", receipt);
            return false;
        }
        if (frames.Count >= Services.Options.MaxFramesPerTransaction)
        {
            ProtocolError("too many frames in transaction", receipt);
            return false;
        }
        frames.Add(frame.ToFrame());
        return true;
    }

    private async ValueTask TransactionAsync(StompFrameView frame)
    {
        var receipt = ReceiptOf(frame);
        var name = frame.GetHeaderString("transaction"u8)!;
        _transactions ??= new Dictionary<string, List<StompFrame>>(StringComparer.Ordinal);
        switch (frame.Command)
        {
            case StompCommand.Begin:
                if (_transactions.ContainsKey(name)) { ProtocolError("transaction already begun", receipt); return; }
                if (_transactions.Count >= Services.Options.MaxTransactions) { ProtocolError("too many open transactions", receipt); return; }
                _transactions[name] = [];
                break;
            case StompCommand.Abort:
                if (!_transactions.Remove(name, out var aborted)) { ProtocolError("unknown transaction", receipt); return; }
                AnswerDropped(aborted);
                break;
            case StompCommand.Commit:
                if (!_transactions.Remove(name, out var frames)) { ProtocolError("unknown transaction", receipt); return; }
                // STOMP: the frames of a transaction take effect at COMMIT, in order. Receipts were answered when the
                // frames arrived, except those of stored destinations: they are answered once committed, before this
                // COMMIT's own receipt.
                foreach (var buffered in frames)
                {
                    if (buffered.Command == StompCommand.Send)
                        await SendNowAsync(buffered.Headers["destination"]!, default, buffered, HeldReceipt(buffered));
                    else if (!Settle(buffered.Headers, out var error))
                    {
                        ProtocolError(error!, receipt);
                        return;
                    }
                }
                if (receipt is not null) await AnsweredAsync();
                break;
        }
        if (receipt is not null) SendReceipt(receipt);
    }

    /// <summary>SENDs to stored destinations in a transaction that will never commit were not answered when they arrived:
    /// each is told it was dropped (with its receipt-id).</summary>
    private void AnswerDropped(List<StompFrame> frames)
    {
        foreach (var dropped in frames)
        {
            if (HeldReceipt(dropped) is { } held) SendUserError("could-not-send-message: transaction aborted", held);
        }
    }

    /// <summary>Whether SENDs to <paramref name="destination"/> are stored (a send handler takes them), so their receipt
    /// waits for the commit.</summary>
    private bool IsStored(string destination) => Services.FindSendHandler(destination) is not null;

    /// <summary>The receipt a SEND buffered in a transaction still owes: that of a stored destination, not answered when
    /// the frame arrived (see <see cref="SendAsync"/>); null otherwise.</summary>
    private string? HeldReceipt(StompFrame buffered) =>
        buffered.Command == StompCommand.Send && IsStored(buffered.Headers["destination"]!) ? buffered.Headers["receipt"] : null;

    // ---- DISCONNECT ---------------------------------------------------------------------------------------------------

    private async ValueTask DisconnectAsync(string? receipt)
    {
        // STOMP 1.2: the RECEIPT for DISCONNECT comes after everything before it, including the receipts of stored
        // messages still waiting for their commit; then the server closes.
        if (receipt is not null)
        {
            // Open transactions end unfinished (STOMP: they are aborted): their held stored SENDs are answered first.
            if (_transactions is not null)
            {
                foreach (var open in _transactions.Values) AnswerDropped(open);
                _transactions.Clear();
            }
            await AnsweredAsync();
            SendReceipt(receipt);
        }
        CloseAfterFlush(DisconnectReason.ClientClosed);
    }

    // ---- SENDs answered later (stored destinations) -------------------------------------------------------------------

    private void Track(Task answered)
    {
        if (answered.IsCompleted) return;
        lock (_unanswered)
        {
            _unanswered.RemoveAll(t => t.IsCompleted);
            _unanswered.Add(answered);
        }
    }

    /// <summary>Waits until every SEND handed to a send handler so far was answered (bounded: a store that neither
    /// commits nor fails within its write timeout must not hold the session forever).</summary>
    private async Task AnsweredAsync()
    {
        Task[] pending;
        lock (_unanswered) pending = [.. _unanswered.Where(t => !t.IsCompleted)];
        if (pending.Length == 0) return;
        try
        {
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromMilliseconds(Math.Max(10_000, 2 * Services.Options.ShutdownTimeoutMs)));
        }
        catch (TimeoutException) { }
    }

    // ---- replies ------------------------------------------------------------------------------------------------------

    public override void SendReceipt(string receiptId)
    {
        var output = new ArrayBufferWriter<byte>(32 + receiptId.Length);
        StompFrameWriter.WriteCommand(output, StompCommand.Receipt);
        StompFrameWriter.WriteHeader(output, "receipt-id", receiptId, StompFrameWriter.EscapeMode(StompCommand.Receipt, _state.Version));
        StompFrameWriter.WriteBodyAndEnd(output, ReadOnlySpan<byte>.Empty, writeContentLength: false);
        TryEnqueueFrame(output.WrittenSpan.ToArray());
    }

    public override void SendUserError(string message, string? receiptId)
    {
        Services.Metrics.Rejection();
        Subscription[] targets;
        lock (_subscriptionsGate) targets = _userQueue.Where(s => s.Destination == "/user/queue/errors").ToArray();
        if (targets.Length == 0) return;                         // nobody listens: nothing to deliver (the receipt never comes)
        var headers = new List<KeyValuePair<string, string>> { new("message", message), new("content-type", "text/plain") };
        if (receiptId is not null) headers.Add(new("receipt-id", receiptId));
        var body = Encoding.UTF8.GetBytes(message);
        var shared = SharedMessage.Create(Services.Ids.Next(), "/user/queue/errors", headers, new ReadOnlySequence<byte>(body));
        foreach (var target in targets) TryDeliver(target, shared);
    }

    private void ProtocolError(string message, string? receiptId)
    {
        Services.Metrics.ProtocolError();
        CloseWithError(message, receiptId, DisconnectReason.ProtocolError);
    }

    protected override byte[] BuildError(string message, string? receiptId, string? detail)
    {
        var output = new ArrayBufferWriter<byte>(128);
        var escape = StompFrameWriter.EscapeMode(StompCommand.Error, _state.Version);
        StompFrameWriter.WriteCommand(output, StompCommand.Error);
        StompFrameWriter.WriteHeader(output, "message", message, escape);
        if (receiptId is not null) StompFrameWriter.WriteHeader(output, "receipt-id", receiptId, escape);
        if (_state.State == StompState.AwaitingConnect) StompFrameWriter.WriteHeader(output, "version", StompVersions.Supported, escape);
        StompFrameWriter.WriteHeader(output, "content-type", "text/plain", escape);
        StompFrameWriter.WriteBodyAndEnd(output, Encoding.UTF8.GetBytes(detail ?? message));
        return output.WrittenSpan.ToArray();
    }

    protected override bool EncodeDelivery(Subscription subscription, SharedMessage message, IBufferWriter<byte> output)
    {
        StompFrameWriter.WriteCommand(output, StompCommand.Message);
        StompFrameWriter.WriteRaw(output, subscription.HeaderLine);
        if (subscription.Ack != AckMode.Auto && _state.Version == StompVersion.V1_2)
        {
            // ack:<message-id>-<subscription number>: unique per session even when two subscriptions match one message.
            var span = output.GetSpan(48);
            "ack:"u8.CopyTo(span);
            Utf8Formatter.TryFormat(message.Id, span[4..], out var n);
            span[4 + n] = (byte)'-';
            Utf8Formatter.TryFormat(subscription.Number, span[(5 + n)..], out var m);
            span[5 + n + m] = (byte)'\n';
            output.Advance(6 + n + m);
        }
        StompFrameWriter.WriteRaw(output, message.Tail(_state.Version));
        return !message.BodyIsUtf8;
    }

    protected override void OnClosed()
    {
        Subscription[] all;
        lock (_subscriptionsGate)
        {
            all = [.. _subscriptions.Values];
            _subscriptions.Clear();
            _userQueue.Clear();
        }
        foreach (var subscription in all) Services.Router.Remove(subscription);
        _transactions = null;
    }

    private static string? ReceiptOf(StompFrameView frame) => frame.GetHeaderString("receipt"u8);

    // Destination strings are interned through the router's cache key space: the same destination costs one string.
    private string DestinationOf(StompFrameView frame)
    {
        frame.TryGetHeader("destination"u8, out var bytes);
        return DestinationCache.Get(bytes);
    }
}
