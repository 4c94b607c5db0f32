using System.Collections.Concurrent;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Sessions;

/// <summary>Every open connection, and the authenticated ones by user. Raises <see cref="UserOnline"/> on a user's first
/// session and <see cref="UserOffline"/> after its last (presence is built on these).</summary>
public sealed class SessionRegistry
{
    private readonly ConcurrentDictionary<string, BrokerSession> _all = new(StringComparer.Ordinal);
    // A user's sessions in no order: each knows its place (BrokerSession.UserSlot), so that leaving costs O(1) however many
    // sessions the user has (a load test, or a display wall on one account, holds thousands).
    private readonly Dictionary<string, List<BrokerSession>> _byUser = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private long _nextId;
    private int _count;                                             // ConcurrentDictionary.Count takes every lock: each upgrade asks

    public event Action<string>? UserOnline;
    public event Action<string>? UserOffline;

    /// <summary>Raised once per connection when it has ended (per-session state elsewhere can be dropped).</summary>
    public event Action<BrokerSession>? SessionEnded;

    public int Count => Volatile.Read(ref _count);

    public string NextSessionId() => "s" + Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Every open session, enumerated in place: no lock and no snapshot (ConcurrentDictionary's <c>Values</c> takes
    /// every lock and copies 19,000 references for each tick of the scanner); a session added or removed meanwhile may or
    /// may not be seen.</summary>
    public IEnumerable<BrokerSession> All
    {
        get
        {
            foreach (var pair in _all) yield return pair.Value;
        }
    }

    internal void Add(BrokerSession connection)
    {
        if (_all.TryAdd(connection.SessionId, connection)) Interlocked.Increment(ref _count);
    }

    internal void Authenticated(BrokerSession connection)
    {
        var userId = connection.Principal!.UserId;
        bool first;
        lock (_gate)
        {
            if (connection.UserSlot >= 0) return;                   // once per session
            if (!_byUser.TryGetValue(userId, out var list)) _byUser[userId] = list = [];
            connection.UserSlot = list.Count;
            list.Add(connection);
            first = list.Count == 1;
        }
        if (first) UserOnline?.Invoke(userId);
    }

    internal void Remove(BrokerSession connection)
    {
        if (_all.TryRemove(connection.SessionId, out _)) Interlocked.Decrement(ref _count);
        SessionEnded?.Invoke(connection);
        if (connection.Principal is not { } principal) return;
        var last = false;
        lock (_gate)
        {
            if (_byUser.TryGetValue(principal.UserId, out var list) && TakeOut(list, connection) && list.Count == 0)
            {
                _byUser.Remove(principal.UserId);
                last = true;
            }
        }
        if (last) UserOffline?.Invoke(principal.UserId);
    }

    // The last session moves into the leaving one's place (under the gate).
    private static bool TakeOut(List<BrokerSession> list, BrokerSession connection)
    {
        var slot = connection.UserSlot;
        if (slot < 0 || slot >= list.Count || !ReferenceEquals(list[slot], connection)) return false;
        var moved = list[^1];
        list[slot] = moved;
        moved.UserSlot = slot;
        list.RemoveAt(list.Count - 1);
        connection.UserSlot = -1;
        return true;
    }

    public bool IsOnline(string userId)
    {
        lock (_gate) return _byUser.ContainsKey(userId);
    }

    /// <summary>Closes every session of a user (ERROR with <paramref name="message"/>, then close).</summary>
    public int CloseUserSessions(string userId, string message, DisconnectReason reason)
    {
        BrokerSession[] sessions;
        lock (_gate) sessions = _byUser.TryGetValue(userId, out var list) ? [.. list] : [];
        foreach (var session in sessions) session.CloseWithError(message, null, reason);
        return sessions.Length;
    }

    /// <summary>Tells every connection the server is going away (after the answers it still owes) and waits (bounded)
    /// until they have closed.</summary>
    public async Task ShutdownAsync(TimeSpan timeout)
    {
        var connections = _all.Values.ToArray();
        // Each session first stops taking frames and sends the receipts of what was committed meanwhile, then the ERROR.
        await Task.WhenAll(connections.Select(c => c.ShutdownAsync(timeout))).WaitAsync(timeout).ConfigureAwait(false);
        var all = Task.WhenAll(connections.Select(c => c.Completion));
        if (await Task.WhenAny(all, Task.Delay(timeout)) != all)
        {
            foreach (var connection in connections) connection.Abort(DisconnectReason.ServerShutdown);
        }
    }
}
