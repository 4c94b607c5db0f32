using System.Buffers;
using System.Buffers.Text;
using System.Runtime.ExceptionServices;
using System.Text;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// A STOMP session: the protocol state machine and the dispatch of each frame. Bytes come from the transport as one
/// stream through one <see cref="StompFrameParser"/> (frames may span transport messages and one message may carry several
/// frames); <see cref="StompStateMachine"/> judges every frame first, then the frame is routed and its replies queued. The
/// subscriptions, open transactions and answers still owed live in their own parts.
/// </summary>
public sealed class StompSession : BrokerSession
{
    private readonly StompFrameParser _parser;
    private readonly StompStateMachine _state;
    private string? _queryToken;                                 // the upgrade's ?access_token=, dropped once CONNECT used it
    private readonly SubscriptionTable _subscriptions;
    private StompTransactions? _transactions;                    // made on the first BEGIN: most sessions never use one
    private ReceiptTracker? _answers;                            // made on the first SEND to a stored destination

    public StompSession(IConnectionTransport transport, BrokerServices services, string sessionId, string? queryToken)
        : base(transport, services, sessionId)
    {
        _parser = new StompFrameParser(services.Limits);
        _state = new StompStateMachine(services.ServerHeartBeat);
        _queryToken = queryToken;
        _subscriptions = new SubscriptionTable(services.Options.MaxSubscriptionsPerSession);
    }

    public override string Protocol => "stomp";

    public StompVersion Version => _state.Version;

    // STOMP's heart-beat is an EOL (LF or CRLF) between frames. The buffer starts at the first unconsumed frame, so EOLs
    // only means no frame is under way and the parser only skips them. A lone CR is not one (the parser would take it for
    // the start of a frame and may refuse it), and more than a few beats at once is not a client at rest: both are
    // handled like frames.
    protected internal override bool OnlyHeartBeats(in ReadOnlySequence<byte> buffer)
    {
        const int MaxBytes = 16;
        if (buffer.Length > MaxBytes) return false;
        Span<byte> bytes = stackalloc byte[MaxBytes];
        bytes = bytes[..(int)buffer.Length];
        buffer.CopyTo(bytes);
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] == (byte)'\n') continue;
            if (bytes[i] != (byte)'\r' || i + 1 == bytes.Length || bytes[i + 1] != (byte)'\n') return false;
            i++;
        }
        return true;
    }

    protected internal override async ValueTask<SequencePosition> ReceiveAsync(ReadOnlySequence<byte> buffer)
    {
        // TryParseNext remembers how far it got in an unfinished frame, so a frame trickling in costs linear time.
        while (!IsClosing && !IsStopping)
        {
            var status = _parser.TryParseNext(ref buffer, out var error);
            if (status == OperationStatus.NeedMoreData) break;
            if (status == OperationStatus.InvalidData)
            {
                // Over a size limit: close 1009 (message too big) after the ERROR; any other malformed frame 1008.
                ProtocolError(error.ToMessage(), _parser.ReceiptOfInvalidFrame,
                    error is StompParseError.FrameTooLarge or StompParseError.BodyTooLarge ? DisconnectReason.MessageTooBig : DisconnectReason.ProtocolError);
                break;
            }
            FramesIn++;
            Services.Metrics.FrameReceived(_parser.Frame.Command);
            var handled = HandleFrameAsync(_parser.Frame);
            if (!handled.IsCompletedSuccessfully) await handled;
            // Credit flow: a burst in one read stops at the first frame that left a subscriber above its high water.
            var credit = WaitForCreditAsync();
            if (!credit.IsCompletedSuccessfully) await credit;
        }
        _parser.ReleaseScratch();                                 // between frames the parser holds no array (idle)
        return buffer.Start;
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
            case StompCommand.Send: return SendAsync(frame);
            case StompCommand.Subscribe: return SubscribeAsync(frame);
            case StompCommand.Unsubscribe: Unsubscribe(frame); break;
            case StompCommand.Ack or StompCommand.Nack: AckOrNack(frame); break;
            case StompCommand.Begin or StompCommand.Commit or StompCommand.Abort: return TransactionAsync(frame);
            case StompCommand.Disconnect: return DisconnectAsync(frame);
        }
        return ValueTask.CompletedTask;
    }

    // ---- CONNECT ------------------------------------------------------------------------------------------------------

    private async ValueTask ConnectAsync(StompFrameView frame)
    {
        var receipt = ReceiptOf(frame);
        var queryToken = _queryToken;
        _queryToken = null;
        var (principal, refusal) = await StompAuthenticator.AuthenticateAsync(frame, queryToken, Services);
        if (principal is null)
        {
            Services.Metrics.AuthenticationFailure();
            CloseWithError(refusal!, receipt, DisconnectReason.AuthenticationFailed);
            return;
        }
        Authenticate(principal);
        _parser.Version = _state.Version;
        (HeartBeatSendMs, HeartBeatReceiveMs) = _state.HeartBeat;
        TryEnqueueFrame(StompCommand.Connected, StompReplyWriter.Connected(_state.Version, Services.ServerHeartBeat, SessionId,
            Services.Options.ServerName, principal.UserId, receipt));
        Services.Sessions.Authenticated(this);
    }

    // ---- SEND ---------------------------------------------------------------------------------------------------------

    private ValueTask SendAsync(StompFrameView frame)
    {
        if (DestinationOf(frame) is not { } destination) return ValueTask.CompletedTask;
        if (destination.Kind == DestinationKind.Session) return RefreshTokenAsync(frame);
        if (frame.TryGetHeader("transaction"u8, out var tx))
        {
            if (!Buffer(Encoding.UTF8.GetString(tx), frame)) return ValueTask.CompletedTask;
            // A stored destination answers only once the message is committed to the database, i.e. after COMMIT;
            // anything else is answered now that the broker holds it.
            if (!_transactions!.HoldsReceipt(destination)) ReceiptIfAsked(frame);
            return ValueTask.CompletedTask;
        }
        return SendNowAsync(destination, frame, null);
    }

    /// <summary>Routes a SEND, from the wire (<paramref name="frame"/>) or from a committed transaction (<paramref name="owned"/>).</summary>
    internal async ValueTask SendNowAsync(Destination destination, StompFrameView frame, StompFrame? owned)
    {
        var denied = await Services.Policy.CanSendAsync(Principal!, destination);
        if (denied is not null)
        {
            SendUserError(denied, owned is null ? ReceiptOf(frame) : _transactions!.HeldReceipt(owned));
            return;
        }
        if (Services.FindSendHandler(destination) is { } handler)
        {
            var context = owned is null
                ? new SendContext(this, Services.Backplane, Services.Ids, destination, frame, null, frame.Body, ReceiptOf(frame))
                : new SendContext(this, Services.Backplane, Services.Ids, destination, default, owned.Headers,
                    new ReadOnlySequence<byte>(owned.Body), _transactions!.HeldReceipt(owned));
            await handler.HandleAsync(context);
            if (!context.Answered.IsCompleted)
                (_answers ??= new ReceiptTracker(TimeSpan.FromMilliseconds(Math.Max(10_000, 2 * Services.Options.ShutdownTimeoutMs)))).Track(context.Answered);
            return;
        }
        if (Services.Backplane.HasSubscribers(destination.Text))
        {
            var id = Services.Ids.Next();
            var message = owned is null
                ? SharedMessage.FromSend(id, destination.Text, frame, Principal!.UserId)
                : SharedMessage.Create(id, destination.Text, owned.Headers, owned.Body, Principal!.UserId);
            Services.Backplane.Publish(message);
        }
        if (owned is null) ReceiptIfAsked(frame);
    }

    /// <summary>A SEND to <c>/session/token</c> (docs/design.md §3 "Long-lived sessions"): the session goes on under the new
    /// token, answered with a RECEIPT when asked; any refusal is an ERROR and the session closes. Nothing is routed or
    /// stored.</summary>
    private async ValueTask RefreshTokenAsync(StompFrameView frame)
    {
        var (principal, refusal) = await StompAuthenticator.RefreshAsync(frame, Principal!, Services);
        Services.Metrics.TokenRefreshed(accepted: principal is not null);
        if (principal is null)
        {
            Services.Metrics.AuthenticationFailure();
            CloseWithError(refusal!, ReceiptOf(frame), DisconnectReason.AuthenticationFailed);
        }
        else if (Authenticate(principal)) ReceiptIfAsked(frame);     // else too late: the session has expired
    }

    // ---- SUBSCRIBE / UNSUBSCRIBE --------------------------------------------------------------------------------------

    private async ValueTask SubscribeAsync(StompFrameView frame)
    {
        if (DestinationOf(frame) is not { } destination) return;
        if (destination.Kind == DestinationKind.Session)
        {
            ProtocolError("cannot subscribe to /session/token: SEND a new token to it", ReceiptOf(frame));
            return;
        }
        var id = frame.GetHeaderString("id"u8) ?? destination.Text;   // STOMP 1.0: id is optional
        var ack = AckMode.Auto;
        if (frame.TryGetHeader("ack"u8, out var ackText))
            ack = ackText.SequenceEqual("client"u8) ? AckMode.Client : ackText.SequenceEqual("client-individual"u8) ? AckMode.ClientIndividual : AckMode.Auto;
        IReplaySource? replay = null;
        var handler = Services.FindSubscriptionHandler(destination);     // a plug-in serves it (the chat's inbox)
        long? since = null;
        if (frame.TryGetHeader("since"u8, out var sinceText))
        {
            if (!Utf8Parser.TryParse(sinceText, out long value, out var used) || used != sinceText.Length || value < 0)
            {
                ProtocolError("invalid since header: a message id (0 for everything)", ReceiptOf(frame));
                return;
            }
            since = value;
            if (handler is null && (replay = Services.FindReplaySource(destination)) is null)
            {
                ProtocolError("since is only for stored destinations (chat conversations, /user/queue/inbox)", ReceiptOf(frame));
                return;
            }
        }
        var denied = await Services.Policy.CanSubscribeAsync(Principal!, destination);
        if (denied is not null)
        {
            ProtocolError(denied, ReceiptOf(frame));
            return;
        }
        var version = _state.Version;
        var observer = Services.FindDeliveryObserver(destination);
        var prefetch = 0;
        if (frame.TryGetHeader("prefetch-count"u8, out var prefetchText)
            && (!Utf8Parser.TryParse(prefetchText, out prefetch, out var prefetchUsed) || prefetchUsed != prefetchText.Length || prefetch < 0))
        {
            ProtocolError("invalid prefetch-count header", ReceiptOf(frame));
            return;
        }
        if (ack == AckMode.Auto) prefetch = 0;                       // a window only means something with acknowledgements
        var outcome = _subscriptions.TryAdd(id, number => new Subscription(this, id, destination, ack, number, version)
            { Observer = observer, Prefetch = prefetch }, out var subscription);
        if (outcome != SubscribeOutcome.Added)
        {
            ProtocolError(outcome == SubscribeOutcome.DuplicateId ? "duplicate subscription id" : "too many subscriptions", ReceiptOf(frame));
            return;
        }
        if (replay is not null && !await ReplayHandOff.ResumeAsync(this, subscription!, replay, since!.Value, ReceiptOf(frame)))
        {
            Services.Metrics.ProtocolError();
            return;
        }
        if (handler is not null && await handler.SubscribeAsync(Principal!, subscription!, since, Aborted) is { } refused)
        {
            _subscriptions.Remove(id);
            ProtocolError(refused, ReceiptOf(frame));
            return;
        }
        // /user/queue/... reaches only this session: it never enters the shared router.
        if (replay is null && destination.Kind != DestinationKind.UserQueue) Services.Router.Add(subscription!);
        ReceiptIfAsked(frame);
    }

    internal override bool Fence(Func<Destination, bool> predicate) => _subscriptions.Fence(predicate);

    // The replay stopped at the source's maximum: the client pages REST history from `next` on.
    protected internal override void ReplayTruncated(Subscription subscription, long next) =>
        TryEnqueueFrame(StompCommand.Message, StompReplyWriter.ReplayTruncated(subscription, next, _state.Version));

    private void Unsubscribe(StompFrameView frame)
    {
        var id = frame.GetHeaderString("id"u8) ?? frame.GetHeaderString("destination"u8)!;
        if (_subscriptions.Remove(id) is not { } subscription)
        {
            ProtocolError("unknown subscription id", ReceiptOf(frame));
            return;
        }
        Forget(subscription);
        ReceiptIfAsked(frame);
    }

    private void Forget(Subscription subscription)
    {
        if (subscription.Destination.Kind != DestinationKind.UserQueue) Services.Router.Remove(subscription);
        else Services.FindSubscriptionHandler(subscription.Destination)?.Unsubscribed(subscription);
    }

    // ---- ACK / NACK ---------------------------------------------------------------------------------------------------

    private void AckOrNack(StompFrameView frame)
    {
        if (frame.TryGetHeader("transaction"u8, out var tx))
        {
            if (Buffer(Encoding.UTF8.GetString(tx), frame)) ReceiptIfAsked(frame);
            return;
        }
        frame.TryGetHeader("id"u8, out var id);
        frame.TryGetHeader("message-id"u8, out var messageId);
        var hasSubscription = frame.TryGetHeader("subscription"u8, out var subscription);
        if (!Settle(id, messageId, hasSubscription ? Encoding.UTF8.GetString(subscription) : null, out var error))
        {
            ProtocolError(error!, ReceiptOf(frame));
            return;
        }
        ReceiptIfAsked(frame);
    }

    // Settles the delivery an ACK/NACK names (see SubscriptionTable.FindAcked). Since deliveries are not redelivered, NACK
    // settles too.
    internal bool Settle(ReadOnlySpan<byte> ackId, ReadOnlySpan<byte> messageIdText, string? subscriptionId, out string? error)
    {
        var subscription = _subscriptions.FindAcked(_state.Version, ackId, messageIdText, subscriptionId, out var messageId, out error);
        if (subscription is null) return false;
        if (!subscription.Settle(messageId))
        {
            error = "unknown ack id";
            return false;
        }
        subscription.Observer?.Delivered(messageId, Principal!.UserId);    // under client acks, an ACK is what delivered means
        ReleaseWaiting(subscription);
        return true;
    }

    // ---- transactions -------------------------------------------------------------------------------------------------

    /// <summary>Buffers <paramref name="frame"/> in its transaction; false (after the ERROR) when there is none such or it
    /// is full.</summary>
    private bool Buffer(string transaction, StompFrameView frame)
    {
        if ((_transactions is null ? "unknown transaction" : _transactions.Add(transaction, frame)) is not { } error) return true;
        ProtocolError(error, ReceiptOf(frame));
        return false;
    }

    private async ValueTask TransactionAsync(StompFrameView frame)
    {
        var receipt = ReceiptOf(frame);
        var name = frame.GetHeaderString("transaction"u8)!;
        string? error = null;
        switch (frame.Command)
        {
            case StompCommand.Begin:
                error = (_transactions ??= new StompTransactions(this)).Begin(name);
                break;
            case StompCommand.Abort:
                error = _transactions is null ? "unknown transaction" : _transactions.Abort(name);
                break;
            case StompCommand.Commit:
                // The held receipts of the committed SENDs come before this COMMIT's own receipt.
                error = _transactions is null ? "unknown transaction" : await _transactions.CommitAsync(name);
                if (error is null && receipt is not null && _answers is not null) await _answers.AllAnsweredAsync();
                break;
        }
        if (error is not null) ProtocolError(error, receipt);
        else if (receipt is not null) SendReceipt(receipt);
    }

    // ---- DISCONNECT ---------------------------------------------------------------------------------------------------

    private async ValueTask DisconnectAsync(StompFrameView frame)
    {
        // STOMP 1.2: the RECEIPT for DISCONNECT comes after everything before it, including the receipts of stored
        // messages still waiting for their commit; then the server closes.
        if (ReceiptOf(frame) is { } receipt)
        {
            // Open transactions end unfinished (STOMP: they are aborted): their held stored SENDs are answered first.
            _transactions?.AbortAll();
            if (_answers is not null) await _answers.AllAnsweredAsync();
            SendReceipt(receipt);
        }
        CloseAfterFlush(DisconnectReason.ClientClosed);
    }

    // ---- replies ------------------------------------------------------------------------------------------------------

    /// <summary>Answers the frame's <c>receipt</c> header, if it has one, without allocating.</summary>
    private void ReceiptIfAsked(StompFrameView frame)
    {
        if (frame.TryGetHeader("receipt"u8, out var receipt)) SendReceipt(receipt);
    }

    private void SendReceipt(ReadOnlySpan<byte> receiptId) =>
        TryEnqueuePooled(StompCommand.Receipt, new ReceiptFrame(receiptId, _state.Version),
            static (output, receipt) => StompFrameWriter.WriteReceipt(output, receipt.Id, receipt.Version));

    private readonly ref struct ReceiptFrame(ReadOnlySpan<byte> id, StompVersion version)
    {
        public ReadOnlySpan<byte> Id { get; } = id;
        public StompVersion Version { get; } = version;
    }

    public override void SendReceipt(string receiptId, long? messageId = null) =>
        TryEnqueuePooled(StompCommand.Receipt, (receiptId, messageId, _state.Version),
            static (output, receipt) => StompReplyWriter.WriteReceipt(output, receipt.receiptId, receipt.messageId, receipt.Version));

    /// <summary>A business rejection: a MESSAGE on each of the session's <c>/user/queue/errors</c> subscriptions, written
    /// straight into pooled buffers (no allocation in steady state). Never silent: a frame that asked for a receipt, from a
    /// session that listens to no <c>/user/queue/errors</c>, gets an ERROR with its <c>receipt-id</c> and the reason, and
    /// the connection closes (STOMP: a receipt is either answered or the connection ends with an ERROR).</summary>
    public override void SendUserError(string message, string? receiptId)
    {
        Services.Metrics.Rejection();
        var error = new UserError(this, message, receiptId, Services.Ids.Next());
        var told = _subscriptions.ForEachUserQueue(StompReplyWriter.UserErrorsDestination, error, static (subscription, e) =>
            e.Session.TryEnqueuePooled(StompCommand.Message, (subscription, e), static (output, s) =>
                StompReplyWriter.WriteUserError(output, s.subscription, s.e.Message, s.e.ReceiptId, s.e.Id, s.e.Session._state.Version)));
        if (told == 0 && receiptId is not null) CloseWithError(message, receiptId, DisconnectReason.ProtocolError);
    }

    private readonly record struct UserError(StompSession Session, string Message, string? ReceiptId, long Id);

    private void ProtocolError(string message, string? receiptId, DisconnectReason reason = DisconnectReason.ProtocolError)
    {
        Services.Metrics.ProtocolError();
        CloseWithError(message, receiptId, reason);
    }

    protected internal override byte[] BuildError(string message, string? receiptId, string? detail) =>
        StompReplyWriter.Error(message, receiptId, detail, _state.Version, listVersions: _state.State == StompState.AwaitingConnect);

    protected internal override bool EncodeDelivery(Subscription subscription, SharedMessage message, bool replay, IBufferWriter<byte> output)
    {
        StompFrameWriter.WriteCommand(output, StompCommand.Message);
        StompFrameWriter.WriteRaw(output, subscription.HeaderLine);
        if (replay) StompFrameWriter.WriteRaw(output, "replay:true\n"u8);
        if (subscription.Ack != AckMode.Auto && _state.Version == StompVersion.V1_2) StompAckId.WriteHeader(output, message.Id, subscription.Number);
        message.WriteTail(output, _state.Version);
        return !message.BodyIsUtf8;
    }

    protected override Task AnswersOwedAsync() => _answers?.AllAnsweredAsync() ?? Task.CompletedTask;

    protected override void OnClosed()
    {
        Exception? failed = null;
        foreach (var subscription in _subscriptions.Clear())
        {
            try { Forget(subscription); }
            catch (Exception ex) { failed ??= ex; }               // a plug-in's Unsubscribed threw: the rest still go
        }
        _transactions?.Forget();
        if (failed is not null) ExceptionDispatchInfo.Throw(failed);
    }

    private static string? ReceiptOf(StompFrameView frame) => frame.GetHeaderString("receipt"u8);

    /// <summary>The frame's destination, parsed once per distinct destination; a missing, malformed or unknown one is a
    /// protocol error for SEND and SUBSCRIBE alike.</summary>
    private Destination? DestinationOf(StompFrameView frame)
    {
        frame.TryGetHeader("destination"u8, out var bytes);
        var destination = Services.Destinations.Get(bytes, out var error);
        if (destination is null) ProtocolError(error.ToMessage(), ReceiptOf(frame));
        return destination;
    }
}
