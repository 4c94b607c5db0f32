using WsBroker.Broker.Auth;
using WsBroker.Broker.Connections;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Extensibility;

/// <summary>Who may use which destination. Registered in DI; the engine asks it on every SUBSCRIBE and SEND.</summary>
public interface IDestinationPolicy
{
    /// <summary>null when allowed; else the message of the ERROR that closes the connection.</summary>
    ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, string destination);

    /// <summary>null when allowed; else the business rejection delivered on <c>/user/queue/errors</c> (connection kept).</summary>
    ValueTask<string?> CanSendAsync(BrokerPrincipal user, string destination);

    /// <summary>Asked once per connection after the token is valid: null when the user may connect; else the message of
    /// the ERROR that refuses it (STOMP) or of the 403 problem (raw topic URL).</summary>
    ValueTask<string?> CanConnectAsync(BrokerPrincipal user) => ValueTask.FromResult<string?>(null);
}

/// <summary>The general rule: any authenticated user may use any destination, unless an <c>Acl</c> rule says otherwise.</summary>
public sealed class AllowAuthenticatedPolicy(TopicAcl acl) : IDestinationPolicy
{
    public ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, string destination) => ValueTask.FromResult(acl.CanSubscribe(user, destination));

    public ValueTask<string?> CanSendAsync(BrokerPrincipal user, string destination) => ValueTask.FromResult(acl.CanSend(user, destination));
}

/// <summary>
/// Takes over SENDs to some destinations (the chat's stored conversations, read receipts, typing). When a handler claims a
/// destination the engine neither routes the SEND nor answers its receipt: the handler does both through <see cref="SendContext"/>.
/// </summary>
public interface ISendHandler
{
    bool CanHandle(string destination);

    /// <summary>Handles one SEND. The read loop of the sender awaits it (inbound back-pressure for that client only), so
    /// slow work (a database commit) should continue after returning and complete the receipt later.</summary>
    ValueTask HandleAsync(SendContext context);
}

/// <summary>One SEND handed to an <see cref="ISendHandler"/>: owned copies of what was sent and the ways to answer it.</summary>
public sealed class SendContext
{
    private readonly IBrokerSession _session;
    private readonly BrokerServices _services;
    private readonly TaskCompletionSource _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _answered;

    internal SendContext(IBrokerSession session, BrokerServices services, string destination, StompHeaders headers, byte[] body, string? receipt)
    {
        _session = session;
        _services = services;
        Destination = destination;
        Headers = headers;
        Body = body;
        ReceiptId = receipt;
    }

    public BrokerPrincipal User => _session.Principal!;
    public string SessionId => _session.SessionId;
    public string Destination { get; }
    public StompHeaders Headers { get; }
    public byte[] Body { get; }
    public string? ReceiptId { get; }

    /// <summary>A fresh broker message id (time-ordered, unique across nodes).</summary>
    public long NextMessageId() => _services.Ids.Next();

    /// <summary>Fans a MESSAGE out to every subscription matching <paramref name="destination"/>; returns how many got it.</summary>
    public int Deliver(long messageId, string destination, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body,
        string? sender = null, string? receiver = null, long? timestamp = null) =>
        _services.Publish(SharedMessage.Create(messageId, destination, headers, new System.Buffers.ReadOnlySequence<byte>(body), sender, receiver, timestamp));

    /// <summary>Completes when the SEND was answered (receipt or rejection): a DISCONNECT or COMMIT of the session waits
    /// for it, so their own RECEIPT never overtakes the answer to an earlier SEND.</summary>
    public Task Answered => _answer.Task;

    /// <summary>Answers the SEND's receipt (if it asked for one). Only the first answer counts.</summary>
    public void Receipt()
    {
        if (Interlocked.Exchange(ref _answered, 1) != 0) return;
        if (ReceiptId is not null) _session.SendReceipt(ReceiptId);
        _answer.TrySetResult();
    }

    /// <summary>Rejects the SEND: a MESSAGE on <c>/user/queue/errors</c> with <c>message</c> and <c>receipt-id</c>; the
    /// connection stays open. Only the first answer counts.</summary>
    public void Reject(string message)
    {
        if (Interlocked.Exchange(ref _answered, 1) != 0) return;
        _session.SendUserError(message, ReceiptId);
        _answer.TrySetResult();
    }
}

/// <summary>What handlers may do with a session.</summary>
public interface IBrokerSession
{
    string SessionId { get; }
    BrokerPrincipal? Principal { get; }
    void SendReceipt(string receiptId);
    void SendUserError(string message, string? receiptId);
}
