using System.Buffers.Text;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// One session's subscriptions: by the client's id, by the per-session number in <c>ack</c> ids, and the
/// <c>/user/queue/…</c> ones that never enter the shared router. Thread-safe (deliveries and the read loop meet here);
/// lookups do not allocate. Most sessions hold one subscription (a customer's conversation, an idle tab): it waits in a
/// field, and the id dictionary is made only for a second one (176 bytes of every such session otherwise). The gate is the
/// table itself: every session has one, so a lock object of its own would cost each one an object.
/// </summary>
internal sealed class SubscriptionTable(int max)
{
    private Subscription? _single;                                 // the one subscription while there is no dictionary
    private Dictionary<string, Subscription>? _byId;               // made for a second subscription, then kept
    private List<Subscription>? _userQueue;                        // made on the first user-queue subscription
    private int _nextNumber;

    private object Gate => this;

    private int Count => _byId?.Count ?? (_single is null ? 0 : 1);

    /// <summary>Adds the subscription <paramref name="create"/> makes from the next number, unless the id is taken or the
    /// table is full.</summary>
    public SubscribeOutcome TryAdd(string id, Func<int, Subscription> create, out Subscription? added)
    {
        added = null;
        lock (Gate)
        {
            if (Find(id) is not null) return SubscribeOutcome.DuplicateId;
            if (Count >= max) return SubscribeOutcome.TooMany;
            added = create(++_nextNumber);
            if (_byId is null && _single is null) _single = added;
            else
            {
                _byId ??= new Dictionary<string, Subscription>(StringComparer.Ordinal);
                if (_single is not null) _byId[_single.Id] = _single;
                _single = null;
                _byId[id] = added;
            }
            if (added.Destination.Kind == DestinationKind.UserQueue) (_userQueue ??= []).Add(added);
            return SubscribeOutcome.Added;
        }
    }

    public Subscription? Remove(string id)
    {
        lock (Gate)
        {
            Subscription? subscription;
            if (_single is not null && _single.Id == id)
            {
                subscription = _single;
                _single = null;
            }
            else if (_byId is null || !_byId.Remove(id, out subscription)) return null;
            if (subscription.Destination.Kind == DestinationKind.UserQueue) _userQueue?.Remove(subscription);
            return subscription;
        }
    }

    public Subscription? ById(string id)
    {
        lock (Gate) return Find(id);
    }

    private Subscription? Find(string id) => _single is not null ? (_single.Id == id ? _single : null) : _byId?.GetValueOrDefault(id);

    // The first subscription that matches, in the field or the dictionary (under the gate; static matchers: no allocation).
    private Subscription? FirstWhere<TState>(TState state, Func<Subscription, TState, bool> match)
    {
        if (_single is not null) return match(_single, state) ? _single : null;
        if (_byId is null) return null;
        foreach (var subscription in _byId.Values)
        {
            if (match(subscription, state)) return subscription;
        }
        return null;
    }

    /// <summary>The subscription with per-session <paramref name="number"/> (STOMP 1.2 <c>ack</c> ids).</summary>
    public Subscription? ByNumber(int number)
    {
        lock (Gate) return FirstWhere(number, static (s, n) => s.Number == n);
    }

    /// <summary>The subscription that has <paramref name="messageId"/> outstanding (STOMP 1.0 ACK by message-id alone).</summary>
    public Subscription? Outstanding(long messageId)
    {
        lock (Gate) return FirstWhere(messageId, static (s, id) => s.IsOutstanding(id));
    }

    /// <summary>
    /// The subscription an ACK or NACK names, and the message: STOMP 1.2 by the <c>ack</c> id the session gave
    /// (<see cref="StompAckId"/>), 1.1 by message-id and subscription, 1.0 by message-id alone. Null with the ERROR message
    /// when there is none.
    /// </summary>
    public Subscription? FindAcked(StompVersion version, ReadOnlySpan<byte> ackId, ReadOnlySpan<byte> messageIdText, string? subscriptionId,
        out long messageId, out string? error)
    {
        error = null;
        Subscription? subscription;
        if (version == StompVersion.V1_2)
        {
            if (!StompAckId.TryParse(ackId, out messageId, out var number))
            {
                error = "unknown ack id";
                return null;
            }
            subscription = ByNumber(number);
        }
        else
        {
            if (!Utf8Parser.TryParse(messageIdText, out messageId, out var used) || used != messageIdText.Length || messageId < 0)
            {
                error = "unknown message-id";
                return null;
            }
            subscription = subscriptionId is not null ? ById(subscriptionId) : Outstanding(messageId);
        }
        if (subscription is null) error = "unknown ack id";
        return subscription;
    }

    /// <summary>Calls <paramref name="action"/> for each subscription to the user queue <paramref name="destination"/>;
    /// returns how many there were.</summary>
    public int ForEachUserQueue<TState>(string destination, TState state, Action<Subscription, TState> action)
    {
        var count = 0;
        lock (Gate)
        {
            if (_userQueue is null) return 0;
            foreach (var subscription in _userQueue)
            {
                if (subscription.Destination.Text != destination) continue;
                action(subscription, state);
                count++;
            }
        }
        return count;
    }

    /// <summary>Fences (<see cref="Subscription.Fence"/>) every subscription whose destination <paramref name="predicate"/>
    /// accepts; true when there was one.</summary>
    public bool Fence(Func<Destination, bool> predicate)
    {
        lock (Gate)
        {
            if (_single is not null) return Fence(_single, predicate);
            var any = false;
            if (_byId is not null)
            {
                foreach (var subscription in _byId.Values) any |= Fence(subscription, predicate);
            }
            return any;
        }
    }

    private static bool Fence(Subscription subscription, Func<Destination, bool> predicate)
    {
        if (!predicate(subscription.Destination)) return false;
        subscription.Fence();
        return true;
    }

    /// <summary>Empties the table; returns what it held.</summary>
    public Subscription[] Clear()
    {
        lock (Gate)
        {
            Subscription[] all = _single is not null ? [_single] : _byId is null ? [] : [.. _byId.Values];
            _single = null;
            _byId?.Clear();
            _userQueue?.Clear();
            return all;
        }
    }
}
