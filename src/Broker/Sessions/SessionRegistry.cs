using System.Collections;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Sessions;

/// <summary>Every open connection, and the authenticated ones by user. Raises <see cref="UserOnline"/> on a user's first
/// session and <see cref="UserOffline"/> after its last (presence is built on these).</summary>
public sealed class SessionRegistry
{
    // Every open session in a slot of one array (BrokerSession.RegistrySlot), which the scanner walks every second with no
    // lock, no enumerator object and no dictionary node per session. A leaving session's slot goes on the free list and the
    // next session takes it; the array doubles when full and keeps its peak size (8 B a slot; a walk covers it all, about
    // a nanosecond a slot). Written under the gate; read by anyone.
    private BrokerSession?[] _slots = new BrokerSession?[64];
    private int _used;                                              // slots handed out so far; the rest were never used
    private int[] _free = new int[16];
    private int _freeCount;
    // A user's sessions in no order: each knows its place (BrokerSession.UserSlot), so that leaving costs O(1) however many
    // sessions the user has (a load test, or a display wall on one account, holds thousands).
    private readonly Dictionary<string, List<BrokerSession>> _byUser = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private long _nextId;
    private int _count;                                             // ConcurrentDictionary.Count takes every lock: each upgrade asks
    private int _closing;

    public event Action<string>? UserOnline;
    public event Action<string>? UserOffline;

    /// <summary>Raised once per connection when it has ended (per-session state elsewhere can be dropped).</summary>
    public event Action<BrokerSession>? SessionEnded;

    public int Count => Volatile.Read(ref _count);

    /// <summary>Sessions that have left the registry while their connection is still closing (the transport's last word,
    /// up to a second for the client's close reply): each still holds a descriptor, so admission counts them too.</summary>
    public int Closing => Volatile.Read(ref _closing);

    internal void ConnectionClosing() => Interlocked.Increment(ref _closing);

    internal void ConnectionClosed() => Interlocked.Decrement(ref _closing);

    public string NextSessionId() => "s" + Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Every open session, enumerated in place: no lock and no snapshot; a session added or removed meanwhile may or
    /// may not be seen.</summary>
    public SessionList All => new(Volatile.Read(ref _slots));

    internal void Add(BrokerSession connection)
    {
        lock (_gate)
        {
            if (connection.RegistrySlot >= 0) return;               // once per session
            int slot;
            if (_freeCount > 0) slot = _free[--_freeCount];
            else
            {
                if (_used == _slots.Length)
                {
                    var grown = new BrokerSession?[_slots.Length * 2];
                    Array.Copy(_slots, grown, _used);
                    Volatile.Write(ref _slots, grown);              // a walk under way finishes on the old one
                }
                slot = _used++;
            }
            connection.RegistrySlot = slot;
            Volatile.Write(ref _slots[slot], connection);
        }
        Interlocked.Increment(ref _count);
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
        var removed = false;
        string? offline = null;                                     // its user, when this was the user's last session
        lock (_gate)
        {
            var slot = connection.RegistrySlot;
            if (slot >= 0 && ReferenceEquals(_slots[slot], connection))
            {
                Volatile.Write(ref _slots[slot], null);
                connection.RegistrySlot = -1;
                if (_freeCount == _free.Length) Array.Resize(ref _free, _free.Length * 2);
                _free[_freeCount++] = slot;
                removed = true;
            }
            if (connection.Principal is { } principal && _byUser.TryGetValue(principal.UserId, out var list)
                && TakeOut(list, connection) && list.Count == 0)
            {
                _byUser.Remove(principal.UserId);
                offline = principal.UserId;
            }
        }
        if (removed)                                                // not when never added or already removed: once per connection
        {
            Interlocked.Decrement(ref _count);
            SessionEnded?.Invoke(connection);
        }
        if (offline is not null) UserOffline?.Invoke(offline);
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
        var connections = All.ToArray();
        // Each session first stops taking frames and sends the receipts of what was committed meanwhile (each bounded by
        // the timeout itself: a second bound here would race it and skip the wait below), then the ERROR.
        await Task.WhenAll(connections.Select(c => c.ShutdownAsync(timeout))).ConfigureAwait(false);
        var all = Task.WhenAll(connections.Select(c => c.Completion));
        if (await Task.WhenAny(all, Task.Delay(timeout)) != all)
        {
            foreach (var connection in connections) connection.Abort(DisconnectReason.ServerShutdown);
        }
    }

    /// <summary>The sessions in the registry's array as it was when asked: a struct, so that <c>foreach</c> over it (the
    /// scanner's, every second) allocates nothing and calls nothing through an interface.</summary>
    public readonly struct SessionList(BrokerSession?[] slots) : IEnumerable<BrokerSession>
    {
        public Enumerator GetEnumerator() => new(slots);

        IEnumerator<BrokerSession> IEnumerable<BrokerSession>.GetEnumerator() => Boxed();

        IEnumerator IEnumerable.GetEnumerator() => Boxed();

        private IEnumerator<BrokerSession> Boxed()
        {
            foreach (var session in this) yield return session;
        }

        public struct Enumerator(BrokerSession?[] slots)
        {
            private int _index = -1;
            private BrokerSession? _current;

            public readonly BrokerSession Current => _current!;

            public bool MoveNext()
            {
                while (++_index < slots.Length)
                {
                    if (Volatile.Read(ref slots[_index]) is { } session)
                    {
                        _current = session;
                        return true;
                    }
                }
                return false;
            }
        }
    }
}
