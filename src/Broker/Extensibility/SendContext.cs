using System.Buffers;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Extensibility;

/// <summary>
/// One SEND handed to an <see cref="ISendHandler"/>: the parsed destination, the headers and body as received, and the
/// ways to answer it. <see cref="Body"/> points into the session's read buffer and is valid until
/// <see cref="ISendHandler.HandleAsync"/> returns (the read loop waits for it): a handler that keeps the body copies it
/// once (<see cref="CopyBody"/>) and shares that copy between the delivery and the store.
/// </summary>
public sealed class SendContext
{
    private readonly IBrokerSession _session;
    private readonly IBackplane _backplane;
    private readonly MessageIdGenerator _ids;
    private readonly StompFrameView _view;
    private readonly StompHeaders? _headers;
    private readonly TaskCompletionSource _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _answered;

    /// <summary>A SEND still in the read buffer (<paramref name="view"/>), or one owned already (<paramref name="headers"/>:
    /// buffered in a transaction, or a raw topic URL's message).</summary>
    internal SendContext(IBrokerSession session, IBackplane backplane, MessageIdGenerator ids, Destination destination,
        StompFrameView view, StompHeaders? headers, ReadOnlySequence<byte> body, string? receipt)
    {
        _session = session;
        _backplane = backplane;
        _ids = ids;
        _view = view;
        _headers = headers;
        Destination = destination;
        Body = body;
        ReceiptId = receipt;
    }

    public BrokerPrincipal User => _session.Principal!;
    public string SessionId => _session.SessionId;
    public Destination Destination { get; }
    public ReadOnlySequence<byte> Body { get; }
    public string? ReceiptId { get; }

    /// <summary>The first value of a header of the SEND, or null.</summary>
    public string? Header(string name)
    {
        if (_headers is not null) return _headers[name];
        Span<byte> utf8 = stackalloc byte[64];
        var length = System.Text.Encoding.UTF8.GetBytes(name, utf8);
        return _view.GetHeaderString(utf8[..length]);
    }

    /// <summary>The body copied out of the read buffer: the one copy a stored message needs.</summary>
    public ReadOnlyMemory<byte> CopyBody() => Body.ToArray();

    /// <summary>A fresh broker message id (time-ordered, unique across nodes).</summary>
    public long NextMessageId() => _ids.Next();

    /// <summary>The allocator of message ids (for a store that takes and registers an id in one step).</summary>
    public Func<long> MessageIds => _ids.Next;

    /// <summary>Fans a message out through the backplane (every node, every matching subscription).</summary>
    public void Publish(SharedMessage message) => _backplane.Publish(message);

    /// <summary>Builds a MESSAGE (keeping <paramref name="body"/>, not copying it) and publishes it.</summary>
    public void Deliver(long messageId, string destination, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body,
        string? sender = null, string? receiver = null, long? timestamp = null) =>
        Publish(SharedMessage.Create(messageId, destination, headers, body, sender, receiver, timestamp));

    /// <summary>Completes when the SEND was answered (receipt or rejection): a DISCONNECT or COMMIT of the session waits
    /// for it, so their own RECEIPT never overtakes the answer to an earlier SEND.</summary>
    public Task Answered => _answer.Task;

    /// <summary>Answers the SEND's receipt (if it asked for one), with the stored message's id when there is one. Only
    /// the first answer counts.</summary>
    public void Receipt(long? messageId = null)
    {
        if (Interlocked.Exchange(ref _answered, 1) != 0) return;
        if (ReceiptId is not null) _session.SendReceipt(ReceiptId, messageId);
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
