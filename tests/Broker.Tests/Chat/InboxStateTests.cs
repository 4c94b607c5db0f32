using WsBroker.Broker.Chat;
using WsBroker.Broker.Routing;
using WsBroker.Persistence;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>One user's inbox: built from the store, then kept from the events; each change with its own id, resumable.</summary>
public class InboxStateTests
{
    private const int Node = 3;
    private static readonly DateTimeOffset s_at = new(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);
    private readonly MessageIdGenerator _ids = new(Node);

    private static UserRecord User(string id, string name, long version = 1, bool deleted = false) =>
        new(id, name, id.StartsWith("admin", StringComparison.Ordinal) ? UserRole.Admin : UserRole.Client, version, deleted ? s_at : null, s_at);

    private static ChatMessage Stored(long id, string admin, string client, string sender, string body = "hi") =>
        new(id, admin, client, sender, sender == admin ? client : admin, body, s_at);

    private static InboxMessage Live(long id, string admin, string client, string sender, string preview = "new") =>
        new(id, admin, client, sender, sender == admin ? client : admin, preview, 1_000 + id);

    /// <summary>admin1 with client1 (last 20, unread 11 and 20) and client2 (last 30 by admin1, nothing unread).</summary>
    private InboxState Loaded(Func<string, bool>? online = null)
    {
        var state = new InboxState("admin1");
        state.Load(new InboxLoad(
            [
                new ConversationSummary("admin1", "client2", Stored(30, "admin1", "client2", "admin1", "see you"), 0),
                new ConversationSummary("admin1", "client1", Stored(20, "admin1", "client1", "client1", "meter"), 2),
            ],
            [new UnreadMessage("admin1", "client1", 11), new UnreadMessage("admin1", "client1", 20)],
            new Dictionary<string, UserRecord> { ["client1"] = User("client1", "Carla"), ["client2"] = User("client2", "Chris") }),
            online ?? (id => id == "client1"));
        state.Complete(state.Issue(_ids.Next));
        return state;
    }

    [Fact]
    public void Load_BuildsTheConversationsNewestFirst_WithUnreadPreviewAndPresence()
    {
        var state = Loaded();
        var visible = state.Visible().ToList();
        Assert.Equal(["client2", "client1"], visible.Select(e => e.PeerId));
        var carla = visible[1];
        Assert.Equal(("Carla", "admin1", "client1", 20L, "client1", "meter"), (carla.PeerName, carla.AdminId, carla.ClientId, carla.LastMessageId, carla.LastSenderId, carla.Preview));
        Assert.Equal(2, carla.Unread.Count);
        Assert.True(carla.Online);
        Assert.False(visible[0].Online);
        Assert.Equal(s_at.ToUnixTimeMilliseconds(), carla.LastMessageAt);
        Assert.True(state.IsLoaded);
        Assert.Equal(state.BaseId, state.LastId);
    }

    [Fact]
    public void OnMessage_NewConversation_IsAConversationChangeNamingThePeer()
    {
        var state = Loaded();
        var change = state.OnMessage(Live(40, "admin1", "client3", "client3", "hello"), User("client3", "Cleo"), peerOnline: true, _ids.Next);
        Assert.NotNull(change);
        Assert.Equal(InboxChangeKind.Conversation, change.Value.Kind);
        Assert.True(change.Value.Id > state.BaseId);
        var cleo = change.Value.Entry;
        Assert.Equal(("client3", "Cleo", 40L, "hello", 1, true), (cleo.PeerId, cleo.PeerName, cleo.LastMessageId, cleo.Preview, cleo.Unread.Count, cleo.Online));
        Assert.Equal("client3", state.Visible().First().PeerId);
    }

    [Fact]
    public void OnMessage_CountsOnlyMessagesToTheUser_AndIgnoresOnesAlreadyKnown()
    {
        var state = Loaded();
        var mine = state.OnMessage(Live(41, "admin1", "client1", "admin1", "answer"), null, true, _ids.Next);
        Assert.Equal(2, mine!.Value.Entry.Unread.Count);                   // sent by the user: not unread
        Assert.Equal("admin1", mine.Value.Entry.LastSenderId);
        var theirs = state.OnMessage(Live(42, "admin1", "client1", "client1"), null, true, _ids.Next);
        Assert.Equal(3, theirs!.Value.Entry.Unread.Count);
        Assert.True(theirs.Value.Id > mine.Value.Id);
        // In the snapshot already, or published again by a cluster node taking over: nothing changes.
        Assert.Null(state.OnMessage(Live(20, "admin1", "client1", "client1"), null, true, _ids.Next));
        Assert.Null(state.OnMessage(Live(42, "admin1", "client1", "client1"), null, true, _ids.Next));
        Assert.Equal(3, state.Entries["client1"].Unread.Count);
    }

    [Fact]
    public void OnSeen_LowersTheUnreadCount_AndAReceiptAppliedTwiceChangesNothing()
    {
        var state = Loaded();
        var change = state.OnSeen(new InboxSeen("admin1", "client1", [11, 20]), _ids.Next);
        Assert.Equal(InboxChangeKind.Unread, change!.Value.Kind);
        Assert.Empty(change.Value.Entry.Unread);
        Assert.Null(state.OnSeen(new InboxSeen("admin1", "client1", [11, 20]), _ids.Next));
        Assert.Null(state.OnSeen(new InboxSeen("admin1", "client9", [5]), _ids.Next));
    }

    [Fact]
    public void OnSeen_BeforeTheMessageReachedThisNode_TheMessageIsNotCounted()
    {
        var state = Loaded();
        Assert.Null(state.OnSeen(new InboxSeen("admin1", "client1", [50]), _ids.Next));
        Assert.Equal(2, state.OnMessage(Live(50, "admin1", "client1", "client1"), null, true, _ids.Next)!.Value.Entry.Unread.Count);
        // Likewise for the first message of a conversation not known yet.
        Assert.Null(state.OnSeen(new InboxSeen("admin1", "client3", [60]), _ids.Next));
        Assert.DoesNotContain("client3", state.Visible().Select(e => e.PeerId));
        var cleo = state.OnMessage(Live(60, "admin1", "client3", "client3"), User("client3", "Cleo"), false, _ids.Next)!.Value.Entry;
        Assert.Equal(("admin1", "client3", "Cleo", 0), (cleo.AdminId, cleo.ClientId, cleo.PeerName, cleo.Unread.Count));
    }

    [Fact]
    public void OnPresence_IsAChangeOnlyWhenItDiffersFromWhatTheInboxShows()
    {
        var state = Loaded();
        Assert.Null(state.OnPresence("client1", true, _ids.Next));
        var off = state.OnPresence("client1", false, _ids.Next);
        Assert.Equal(InboxChangeKind.Presence, off!.Value.Kind);
        Assert.False(off.Value.Entry.Online);
        Assert.Null(state.OnPresence("client9", true, _ids.Next));
    }

    [Fact]
    public void OnUser_RenameAndDelete_AreChanges_AnOlderOrRepeatedRowIsNot()
    {
        var state = Loaded();
        var renamed = state.OnUser(User("client1", "Carla Jones", version: 2), _ids.Next);
        Assert.Equal((InboxChangeKind.User, "Carla Jones"), (renamed!.Value.Kind, renamed.Value.Entry.PeerName));
        Assert.Null(state.OnUser(User("client1", "Carla Jones", version: 2), _ids.Next));
        Assert.Null(state.OnUser(User("client1", "Old name", version: 1), _ids.Next));
        Assert.Null(state.OnUser(User("client1", "Carla Jones", version: 3), _ids.Next));   // newer, same to show
        var deleted = state.OnUser(User("client1", "Carla Jones", version: 4, deleted: true), _ids.Next);
        Assert.True(deleted!.Value.Entry.Deleted);
        Assert.DoesNotContain("client1", state.Visible().Select(e => e.PeerId));
    }

    [Fact]
    public void ChangesSince_GivesEachKindChangedAfterIt_InIdOrder_WithTheConversationOfNow()
    {
        var state = Loaded();
        var first = state.OnMessage(Live(41, "admin1", "client1", "client1"), null, true, _ids.Next)!.Value;
        var since = first.Id;                                               // the client had everything up to here
        var presence = state.OnPresence("client2", true, _ids.Next)!.Value;
        var unread = state.OnSeen(new InboxSeen("admin1", "client1", [11, 20, 41]), _ids.Next)!.Value;
        var message = state.OnMessage(Live(43, "admin1", "client1", "admin1", "later"), null, true, _ids.Next)!.Value;
        var changes = state.ChangesSince(since);
        Assert.Equal([(presence.Id, InboxChangeKind.Presence, "client2"), (unread.Id, InboxChangeKind.Unread, "client1"), (message.Id, InboxChangeKind.Conversation, "client1")],
            changes.Select(c => (c.Id, c.Kind, c.Entry.PeerId)));
        Assert.Equal("later", changes[1].Entry.Preview);                   // the state of now, whatever the kind
        Assert.Empty(state.ChangesSince(message.Id));
    }

    [Fact]
    public void CanResume_OnlyIdsThisNodeGaveThisInbox()
    {
        var state = Loaded();
        var change = state.OnPresence("client2", true, _ids.Next)!.Value;
        Assert.True(state.CanResume(state.BaseId, Node));
        Assert.True(state.CanResume(change.Id, Node));
        Assert.False(state.CanResume(state.BaseId - 1, Node));              // before the inbox was built here
        Assert.False(state.CanResume(_ids.Next(), Node));                   // after its last change: not one of its ids
        Assert.False(state.CanResume(change.Id, Node + 1));                 // another node's ids mean nothing here
        Assert.False(state.CanResume(0, Node));
        Assert.False(new InboxState("admin1").CanResume(change.Id, Node));  // not built yet
    }

    [Fact]
    public void HandOff_EventsTheStoreAlreadyHad_ChangeNothing_LaterOnesApply()
    {
        // The inbox subscribed, then the store was read; events that came meanwhile are applied after the load.
        var state = new InboxState("client1");
        state.Load(new InboxLoad([new ConversationSummary("admin1", "client1", Stored(20, "admin1", "client1", "admin1"), 1)],
            [new UnreadMessage("admin1", "client1", 20)], new Dictionary<string, UserRecord> { ["admin1"] = User("admin1", "Ada") }), _ => true);
        Assert.Null(state.OnMessage(Live(20, "admin1", "client1", "admin1"), null, true, _ids.Next));         // read already
        Assert.NotNull(state.OnMessage(Live(21, "admin1", "client1", "admin1"), null, true, _ids.Next));      // after the read
        Assert.NotNull(state.OnSeen(new InboxSeen("client1", "admin1", [20]), _ids.Next));
        Assert.Null(state.OnSeen(new InboxSeen("client1", "admin1", [20]), _ids.Next));                      // twice: once
        state.Complete(state.Issue(_ids.Next));
        Assert.Equal([21L], state.Entries["admin1"].Unread);
        Assert.Empty(state.ChangesSince(state.BaseId));
    }
}
