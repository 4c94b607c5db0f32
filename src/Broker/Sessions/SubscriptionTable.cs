using System.Buffers.Text;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// One session's subscriptions: by the client's id, by the per-session number in <c>ack</c> ids, and the
/// <c>/user/queue/…</c> ones that never enter the shared router. Thread-safe (deliveries and the read loop meet here);
/// lookups do not allocate. The gate is the id dictionary itself: every session has a table, so a lock object of its own
/// would cost each one an object.
/// </summary>
internal sealed class SubscriptionTable(int max)
{
    private readonly Dictionary<string, Subscription> _byId = new(StringComparer.Ordinal);
    private List<Subscription>? _userQueue;                        // made on the first user-queue subscription
    private int _nextNumber;

    private object Gate => _byId;

    /// <summary>Adds the subscription <paramref name="create"/> makes from the next number, unless the id is taken or the
    /// table is full.</summary>
    public SubscribeOutcome TryAdd(string id, Func<int, Subscription> create, out Subscription? added)
    {
        added = null;
        lock (Gate)
        {
            if (_byId.ContainsKey(id)) return SubscribeOutcome.DuplicateId;
            if (_byId.Count >= max) return SubscribeOutcome.TooMany;
            added = create(++_nextNumber);
            _byId[id] = added;
            if (added.Destination.Kind == DestinationKind.UserQueue) (_userQueue ??= []).Add(added);
            return SubscribeOutcome.Added;
        }
    }

    public Subscription? Remove(string id)
    {
        lock (Gate)
        {
            if (!_byId.Remove(id, out var subscription)) return null;
            if (subscription.Destination.Kind == DestinationKind.UserQueue) _userQueue?.Remove(subscription);
            return subscription;
        }
    }

    public Subscription? ById(string id)
    {
        lock (Gate) return _byId.GetValueOrDefault(id);
    }

    /// <summary>The subscription with per-session <paramref name="number"/> (STOMP 1.2 <c>ack</c> ids).</summary>
    public Subscription? ByNumber(int number)
    {
        lock (Gate)
        {
            foreach (var subscription in _byId.Values)
            {
                if (subscription.Number == number) return subscription;
            }
            return null;
        }
    }

    /// <summary>The subscription that has <paramref name="messageId"/> outstanding (STOMP 1.0 ACK by message-id alone).</summary>
    public Subscription? Outstanding(long messageId)
    {
        lock (Gate)
        {
            foreach (var subscription in _byId.Values)
            {
                if (subscription.IsOutstanding(messageId)) return subscription;
            }
            return null;
        }
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

    /// <summary>Whether a subscription's destination is one <paramref name="predicate"/> accepts.</summary>
    public bool Any(Func<Destination, bool> predicate)
    {
        lock (Gate)
        {
            foreach (var subscription in _byId.Values)
            {
                if (predicate(subscription.Destination)) return true;
            }
            return false;
        }
    }

    /// <summary>Empties the table; returns what it held.</summary>
    public Subscription[] Clear()
    {
        lock (Gate)
        {
            Subscription[] all = [.. _byId.Values];
            _byId.Clear();
            _userQueue?.Clear();
            return all;
        }
    }
}
