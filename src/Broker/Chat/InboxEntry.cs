namespace WsBroker.Broker.Chat;

/// <summary>What changed in one conversation of an inbox (docs/design.md §3 "Inbox"); the wire name is lower case.</summary>
public enum InboxChangeKind
{
    /// <summary>A new conversation, or a new last message in one.</summary>
    Conversation,
    /// <summary>The unread count after a read receipt of the inbox's user.</summary>
    Unread,
    /// <summary>The peer came online or went offline.</summary>
    Presence,
    /// <summary>The peer was renamed or deleted.</summary>
    User,
}

/// <summary>
/// One conversation as one user's inbox holds it: the peer, the last message, the messages to the user not seen yet (by
/// id, so a read receipt applied twice changes nothing), and for each kind of change the inbox id of its latest change (a
/// resume with <c>since</c> sends the kinds changed after it).
/// </summary>
public sealed class InboxEntry(string adminId, string clientId, string peerId)
{
    public string AdminId { get; } = adminId;
    public string ClientId { get; } = clientId;
    public string PeerId { get; } = peerId;
    public string PeerName { get; set; } = peerId;
    /// <summary>Version of the peer's user row last applied (a user event with an older one is ignored).</summary>
    public long PeerVersion { get; set; }
    public bool Deleted { get; set; }
    public bool Online { get; set; }

    /// <summary>0 while the conversation has no message this inbox knows of.</summary>
    public long LastMessageId { get; set; }
    public string? LastSenderId { get; set; }
    public string Preview { get; set; } = "";
    public long LastMessageAt { get; set; }

    /// <summary>Messages to the inbox's user not seen yet.</summary>
    public HashSet<long> Unread { get; } = [];

    /// <summary>Messages a read receipt named before their own delivery reached this node (another node's order): they
    /// are not counted when they arrive. Only ids above <see cref="LastMessageId"/>, pruned as it passes them.</summary>
    public HashSet<long> SeenAhead { get; } = [];

    private readonly long[] _changed = new long[4];

    /// <summary>The inbox id of the latest change of <paramref name="kind"/>, 0 when none since the inbox was built.</summary>
    public long ChangedAt(InboxChangeKind kind) => _changed[(int)kind];

    public void Change(InboxChangeKind kind, long id) => _changed[(int)kind] = id;
}
