using WsBroker.Broker.Routing;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>A change of one conversation of an inbox: its inbox id (the MESSAGE's <c>message-id</c>), its kind, and the
/// conversation (its state of now: every delta carries the whole conversation, so applying one twice changes nothing).</summary>
public readonly record struct InboxChange(long Id, InboxChangeKind Kind, InboxEntry Entry);

/// <summary>A committed chat message as an inbox sees it (the preview already cut).</summary>
public sealed record InboxMessage(long Id, string AdminId, string ClientId, string SenderId, string ReceiverId, string Preview, long Timestamp)
{
    public string PeerOf(string userId) => userId == AdminId ? ClientId : AdminId;
}

/// <summary>A read receipt: <paramref name="ReaderId"/> has seen these messages of <paramref name="PeerId"/>.</summary>
public sealed record InboxSeen(string ReaderId, string PeerId, IReadOnlyList<long> MessageIds);

/// <summary>What an inbox is built from: the user's conversations with their last messages (the query of
/// <c>GET /api/contacts</c>), the messages to the user not seen yet, and the peers' user rows.</summary>
public sealed record InboxLoad(IReadOnlyList<ConversationSummary> Conversations, IReadOnlyList<UnreadMessage> Unread,
    IReadOnlyDictionary<string, UserRecord> Peers);

/// <summary>
/// One user's inbox on this node (docs/design.md §3 "Inbox"): its conversations, built once from the store and then kept
/// up to date from the events alone (no query per chat message), the subscriptions it feeds, and what a resume needs.
/// Every change takes a new inbox id from <c>nextId</c> (the node's <see cref="MessageIdGenerator"/>, so ids only grow in
/// the order the changes are made here); the conversation remembers, per kind, the id of its latest change, so a resume
/// with <c>since</c> sends exactly the kinds changed after it. Pure logic, no I/O, one thread at a time (the feed's loop).
/// </summary>
public sealed class InboxState(string userId)
{
    private const int MaxSeenAhead = 1000;
    private readonly Dictionary<string, InboxEntry> _entries = new(StringComparer.Ordinal);

    public string UserId { get; } = userId;

    public IReadOnlyDictionary<string, InboxEntry> Entries => _entries;

    /// <summary>The id the inbox was complete at (its first snapshot): a <c>since</c> at or after it can be resumed here.</summary>
    public long BaseId { get; private set; }

    /// <summary>The last inbox id given out for this inbox (0: none yet).</summary>
    public long LastId { get; private set; }

    public bool IsLoaded => BaseId != 0;

    /// <summary>The subscriptions it feeds (the feed's).</summary>
    internal List<Subscription> Subscriptions { get; } = [];

    /// <summary>Events that arrived while the inbox was read from the store, applied once it is (the feed's).</summary>
    internal List<object> Held { get; } = [];

    /// <summary>When an inbox nobody subscribes to any more is dropped (Environment.TickCount64; the feed's).</summary>
    internal long RetainUntilMs { get; set; }

    /// <summary>Whether <paramref name="peerId"/> has a conversation here with at least one message.</summary>
    public bool HasConversation(string peerId) => _entries.TryGetValue(peerId, out var e) && e.LastMessageId > 0;

    /// <summary>Builds the conversations from the store; <paramref name="online"/> says who is online now.</summary>
    public void Load(InboxLoad load, Func<string, bool> online)
    {
        foreach (var summary in load.Conversations)
        {
            if (summary.LastMessage is not { } last) continue;
            var peerId = InboxLoader.PeerOf(summary, UserId);
            var entry = Entry(summary.AdminId, summary.ClientId, peerId);
            if (last.Id <= entry.LastMessageId) continue;
            entry.LastMessageId = last.Id;
            entry.LastSenderId = last.SenderId;
            entry.Preview = InboxMessages.Preview(last.Body);
            entry.LastMessageAt = last.SentAt.ToUnixTimeMilliseconds();
            if (load.Peers.TryGetValue(peerId, out var peer)) ApplyUser(entry, peer);
            entry.Online = online(peerId);
        }
        foreach (var unread in load.Unread)
        {
            if (_entries.TryGetValue(UserId == unread.AdminId ? unread.ClientId : unread.AdminId, out var entry)) entry.Unread.Add(unread.Id);
        }
    }

    /// <summary>Marks the inbox complete at <paramref name="snapshotId"/> (an id taken with <see cref="Issue"/>).</summary>
    public void Complete(long snapshotId) => BaseId = snapshotId;

    /// <summary>A new inbox id (for a snapshot).</summary>
    public long Issue(Func<long> nextId) => LastId = nextId();

    /// <summary>A committed chat message of the user's. <paramref name="peer"/> (the other party's row) names a new
    /// conversation. Null when it changes nothing: a message already known (in the snapshot, or published again by a
    /// cluster node taking over) has an id at or below the conversation's last one.</summary>
    public InboxChange? OnMessage(InboxMessage message, UserRecord? peer, bool peerOnline, Func<long> nextId)
    {
        var peerId = message.PeerOf(UserId);
        var entry = Entry(message.AdminId, message.ClientId, peerId);
        if (message.Id <= entry.LastMessageId) return null;
        if (entry.LastMessageId == 0)
        {
            if (peer is not null) ApplyUser(entry, peer);
            entry.Online = peerOnline;
        }
        entry.LastMessageId = message.Id;
        entry.LastSenderId = message.SenderId;
        entry.Preview = message.Preview;
        entry.LastMessageAt = message.Timestamp;
        if (message.ReceiverId == UserId && !entry.SeenAhead.Remove(message.Id)) entry.Unread.Add(message.Id);
        if (entry.SeenAhead.Count > 0) entry.SeenAhead.RemoveWhere(id => id <= message.Id);
        return Changed(entry, InboxChangeKind.Conversation, nextId);
    }

    /// <summary>A read receipt of the user's (it read <paramref name="seen"/>'s messages): the new unread count, or null
    /// when none of them was counted (a receipt applied twice, or one for messages not delivered here yet: those are
    /// remembered and not counted when they come).</summary>
    public InboxChange? OnSeen(InboxSeen seen, Func<long> nextId)
    {
        // No conversation yet: the receipt overtook its first message on the way to this node; a placeholder remembers it.
        var entry = _entries.TryGetValue(seen.PeerId, out var known) ? known : Entry("", "", seen.PeerId);
        var changed = false;
        foreach (var id in seen.MessageIds)
        {
            if (entry.Unread.Remove(id)) changed = true;
            else if (id > entry.LastMessageId && entry.SeenAhead.Count < MaxSeenAhead) entry.SeenAhead.Add(id);
        }
        return changed ? Changed(entry, InboxChangeKind.Unread, nextId) : null;
    }

    /// <summary>The peer's presence now; null when the inbox already shows it.</summary>
    public InboxChange? OnPresence(string peerId, bool online, Func<long> nextId)
    {
        if (!_entries.TryGetValue(peerId, out var entry) || entry.Online == online) return null;
        entry.Online = online;
        return entry.LastMessageId > 0 ? Changed(entry, InboxChangeKind.Presence, nextId) : null;
    }

    /// <summary>The peer's user row now (renamed, deleted, or created again); null when the inbox already shows it, or the
    /// row is older than the one applied.</summary>
    public InboxChange? OnUser(UserRecord user, Func<long> nextId)
    {
        if (!_entries.TryGetValue(user.Id, out var entry) || (entry.PeerVersion != 0 && user.Version <= entry.PeerVersion)) return null;
        var shown = (entry.PeerName, entry.Deleted);
        ApplyUser(entry, user);
        return shown != (entry.PeerName, entry.Deleted) && entry.LastMessageId > 0 ? Changed(entry, InboxChangeKind.User, nextId) : null;
    }

    /// <summary>The conversations a snapshot shows: those with a message and a peer not deleted, newest first.</summary>
    public IEnumerable<InboxEntry> Visible() =>
        _entries.Values.Where(e => e.LastMessageId > 0 && !e.Deleted).OrderByDescending(e => e.LastMessageId);

    /// <summary>Whether a subscriber that holds everything up to <paramref name="since"/> can be given just the changes
    /// after it: <paramref name="since"/> must be an id this node gave out for this inbox (it has the node's number, and
    /// lies between the inbox's first snapshot and its last change).</summary>
    public bool CanResume(long since, int nodeId) =>
        IsLoaded && since >= BaseId && since <= LastId && MessageIdGenerator.NodeOf(since) == nodeId;

    /// <summary>Every change after <paramref name="since"/>, oldest first: per conversation and kind the latest one, with
    /// its own id, carrying the conversation as it is now.</summary>
    public IReadOnlyList<InboxChange> ChangesSince(long since)
    {
        var changes = new List<InboxChange>();
        foreach (var entry in _entries.Values)
        {
            if (entry.LastMessageId == 0) continue;
            foreach (var kind in s_kinds)
            {
                var at = entry.ChangedAt(kind);
                if (at > since) changes.Add(new InboxChange(at, kind, entry));
            }
        }
        changes.Sort((a, b) => a.Id.CompareTo(b.Id));
        return changes;
    }

    private static readonly InboxChangeKind[] s_kinds = Enum.GetValues<InboxChangeKind>();

    private InboxEntry Entry(string adminId, string clientId, string peerId)
    {
        if (_entries.TryGetValue(peerId, out var entry))
        {
            // A placeholder made by a read receipt that came first gets its conversation's names now.
            if (entry.AdminId.Length == 0 && adminId.Length > 0) _entries[peerId] = entry = Adopt(entry, adminId, clientId);
            return entry;
        }
        _entries[peerId] = entry = new InboxEntry(adminId, clientId, peerId);
        return entry;
    }

    private static InboxEntry Adopt(InboxEntry placeholder, string adminId, string clientId)
    {
        var entry = new InboxEntry(adminId, clientId, placeholder.PeerId);
        entry.SeenAhead.UnionWith(placeholder.SeenAhead);
        return entry;
    }

    private static void ApplyUser(InboxEntry entry, UserRecord user)
    {
        entry.PeerName = user.Name;
        entry.Deleted = user.IsDeleted;
        entry.PeerVersion = user.Version;
    }

    private InboxChange Changed(InboxEntry entry, InboxChangeKind kind, Func<long> nextId)
    {
        var id = Issue(nextId);
        entry.Change(kind, id);
        return new InboxChange(id, kind, entry);
    }
}
