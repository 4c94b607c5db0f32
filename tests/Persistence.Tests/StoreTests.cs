using System.Collections.Concurrent;
using System.Text;
using Dapper;

namespace WsBroker.Persistence.Tests;

/// <summary>The whole store suite; runs once per provider (see the derived classes at the end).</summary>
public abstract class StoreTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);
    private readonly StorageProvider _provider;
    private Func<Task> _drop = () => Task.CompletedTask;
    private long _nextId = 1000;

    protected StoreTests(StorageProvider provider) => _provider = provider;

    protected PersistenceStores Stores { get; private set; } = null!;
    protected PersistenceOptions Options { get; private set; } = null!;
    private IUserStore Users => Stores.Users;
    private IMessageStore Messages => Stores.Messages;

    public async Task InitializeAsync()
    {
        (Options, _drop) = await TestDatabases.CreateAsync(_provider);
        Stores = await StoreFactory.CreateAsync(Options).WaitAsync(s_timeout);
        var now = DateTimeOffset.UtcNow;
        await Users.UpsertAsync("admin1", "Admin One", UserRole.Admin, 1, now);
        await Users.UpsertAsync("admin2", "Admin Two", UserRole.Admin, 1, now);
        foreach (var c in new[] { "client1", "client2", "client3" }) await Users.UpsertAsync(c, c, UserRole.Client, 1, now);
    }

    public async Task DisposeAsync()
    {
        await Stores.DisposeAsync();
        await _drop();
    }

    private long NextId() => Interlocked.Increment(ref _nextId);

    private static ChatMessageDraft Draft(string admin, string client, bool fromClient = true, string body = "hi ünï 💬") =>
        new(admin, client, fromClient ? client : admin, fromClient ? admin : client, Encoding.UTF8.GetBytes(body),
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123));

    /// <summary>Appends through the store's allocator path and waits for the commit; returns the message as stored.</summary>
    private async Task<ChatMessage> StoreAsync(ChatMessageDraft draft)
    {
        var append = Messages.Append(draft, NextId);
        await append.Committed.WaitAsync(s_timeout);
        return AsStored(draft, append.Id);
    }

    private Task<ChatMessage> StoreAsync(string admin, string client, bool fromClient = true) => StoreAsync(Draft(admin, client, fromClient));

    private static ChatMessage AsStored(ChatMessageDraft d, long id) =>
        new(id, d.AdminId, d.ClientId, d.SenderId, d.ReceiverId, Encoding.UTF8.GetString(d.Body.Span), d.SentAt);

    /// <summary>Every id of a conversation as the database has it now, read directly (not through the store's horizon).</summary>
    private async Task<HashSet<long>> CommittedIdsAsync(string admin, string client)
    {
        await using var connection = SqlDialect.Create(Options).CreateConnection();
        return (await connection.QueryAsync<long>("SELECT id FROM messages WHERE admin_id = @admin AND client_id = @client", new { admin, client })).ToHashSet();
    }

    /// <summary>A full page walk, newest first, 7 at a time.</summary>
    private async Task<List<long>> WalkAsync(string admin, string client, int pageSize = 7)
    {
        var seen = new List<long>();
        long? before = null;
        while (true)
        {
            var page = await Messages.GetPageAsync(admin, client, before, pageSize);
            if (page.Count == 0) return seen;
            seen.AddRange(page.Select(m => m.Id));
            before = page[^1].Id;
        }
    }

    // ---- migrations ---------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Migrations_AppliedAgainAndConcurrently_AreIdempotent()
    {
        var again = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => StoreFactory.CreateAsync(Options))).WaitAsync(s_timeout);
        foreach (var stores in again)
        {
            Assert.True(await stores.PingAsync());
            await stores.DisposeAsync();
        }
        Assert.Equal(5, (await Users.ListAsync()).Count);           // the data survived
    }

    [Fact]
    public async Task Migrations_TwoNodesOnAFreshDatabase_BothStart()
    {
        var (options, drop) = await TestDatabases.CreateAsync(_provider);
        try
        {
            var both = await Task.WhenAll(StoreFactory.CreateAsync(options), StoreFactory.CreateAsync(options)).WaitAsync(s_timeout);
            await both[0].Users.UpsertAsync("u", "U", UserRole.Client, 1, DateTimeOffset.UtcNow);
            Assert.NotNull(await both[1].Users.FindAsync("u"));
            foreach (var s in both) await s.DisposeAsync();
        }
        finally
        {
            await drop();
        }
    }

    // ---- users --------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Upsert_NewerVersionWins_OlderAndEqualAreStale()
    {
        var t = DateTimeOffset.UtcNow;
        Assert.Equal(UserChangeOutcome.Applied, await Users.UpsertAsync("u1", "Ana", UserRole.Client, 5, t));
        Assert.Equal(UserChangeOutcome.Stale, await Users.UpsertAsync("u1", "Old", UserRole.Client, 4, t));
        Assert.Equal(UserChangeOutcome.Stale, await Users.UpsertAsync("u1", "Same", UserRole.Client, 5, t));
        Assert.Equal(UserChangeOutcome.Applied, await Users.UpsertAsync("u1", "Ana B", UserRole.Admin, 6, t));
        var user = await Users.FindAsync("u1");
        Assert.Equal(("Ana B", UserRole.Admin, 6L), (user!.Name, user.Role, user.Version));
    }

    // Two cluster nodes share the database: the node that finds an event already applied (Stale) still refreshes its cache
    // from the stored row at once, instead of serving its cached copy until it expires.
    [Fact]
    public async Task Delete_AppliedByAnotherNode_StaleHere_RefreshesThisNodesCacheAtOnce()
    {
        await using var otherNode = await StoreFactory.CreateAsync(Options).WaitAsync(s_timeout);
        var t = DateTimeOffset.UtcNow;
        Assert.Equal(UserChangeOutcome.Applied, await Users.UpsertAsync("u9", "Nia", UserRole.Client, 1, t));
        Assert.False((await Users.FindAsync("u9"))!.IsDeleted);                   // now cached here
        Assert.Equal(UserChangeOutcome.Applied, await otherNode.Users.DeleteAsync("u9", 2, t));
        Assert.False((await Users.FindAsync("u9"))!.IsDeleted);                   // this node's cache has not heard yet
        Assert.Equal(UserChangeOutcome.Stale, await Users.DeleteAsync("u9", 2, t));
        var user = await Users.FindAsync("u9");
        Assert.True(user!.IsDeleted);
        Assert.Equal(2, user.Version);
    }

    [Fact]
    public async Task Delete_IsSoft_AndOlderCreateDoesNotRevive_ButNewerDoes()
    {
        var t = DateTimeOffset.UtcNow;
        await Users.UpsertAsync("u2", "Bo", UserRole.Client, 1, t);
        Assert.Equal(UserChangeOutcome.Applied, await Users.DeleteAsync("u2", 2, t));
        Assert.True((await Users.FindAsync("u2"))!.IsDeleted);
        Assert.Equal(UserChangeOutcome.Stale, await Users.UpsertAsync("u2", "Bo", UserRole.Client, 1, t));
        Assert.DoesNotContain(await Users.ListAsync(), u => u.Id == "u2");
        Assert.Equal(UserChangeOutcome.Applied, await Users.UpsertAsync("u2", "Bo again", UserRole.Client, 3, t));
        Assert.False((await Users.FindAsync("u2"))!.IsDeleted);
    }

    [Fact]
    public async Task Delete_UnknownUser_LeavesATombstone_SoALateCreateStaysDeleted()
    {
        var t = DateTimeOffset.UtcNow;
        Assert.Equal(UserChangeOutcome.Applied, await Users.DeleteAsync("ghost", 10, t));
        Assert.Equal(UserChangeOutcome.Stale, await Users.UpsertAsync("ghost", "G", UserRole.Client, 9, t));
        Assert.True((await Users.FindAsync("ghost"))!.IsDeleted);
    }

    [Fact]
    public async Task Changed_IsRaisedForAppliedChangesOnly_AndFindSeesTheNewValue()
    {
        var changes = new ConcurrentQueue<UserChange>();
        Users.Changed += changes.Enqueue;
        var t = DateTimeOffset.UtcNow;
        Assert.Equal("client1", (await Users.FindAsync("client1"))!.Name);          // cached now
        await Users.UpsertAsync("client1", "Renamed", UserRole.Client, 2, t);
        await Users.UpsertAsync("client1", "Stale", UserRole.Client, 1, t);
        await Users.DeleteAsync("client1", 3, t);
        Assert.Equal([false, true], changes.Select(c => c.Deleted));
        Assert.True((await Users.FindAsync("client1"))!.IsDeleted);
        Assert.Null(await Users.FindAsync("nobody"));
    }

    [Fact]
    public async Task Find_RacingTheUsersCreation_NeverHidesTheNewUser()
    {
        // A lookup that read "no such user" just before the create committed must not cache that over the new user.
        for (var i = 0; i < 40; i++)
        {
            var id = $"new{i}";
            await Task.WhenAll(Users.FindAsync(id).AsTask(), Users.UpsertAsync(id, "New", UserRole.Client, 1, DateTimeOffset.UtcNow));
            Assert.NotNull(await Users.FindAsync(id));
        }
    }

    [Fact]
    public async Task Upsert_ConcurrentVersionsOfOneUser_EndsAtTheHighest()
    {
        var t = DateTimeOffset.UtcNow;
        await Task.WhenAll(Enumerable.Range(1, 20).Select(v => Users.UpsertAsync("race", $"v{v}", UserRole.Client, v, t))).WaitAsync(s_timeout);
        Assert.Equal("v20", (await Users.ListAsync()).Single(u => u.Id == "race").Name);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public async Task Upsert_BadId_IsRejected(string id) =>
        await Assert.ThrowsAsync<ArgumentException>(() => Users.UpsertAsync(id, "x", UserRole.Client, 1, DateTimeOffset.UtcNow));

    [Fact]
    public async Task Upsert_BadVersionOrLongId_IsRejected()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Users.UpsertAsync("v0", "x", UserRole.Client, 0, DateTimeOffset.UtcNow));
        await Assert.ThrowsAsync<ArgumentException>(() => Users.UpsertAsync(new string('x', 65), "x", UserRole.Client, 1, DateTimeOffset.UtcNow));
    }

    // ---- messages -----------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Append_ThenGetPage_NewestFirstWithKeysetPaging()
    {
        var drafts = Enumerable.Range(0, 25).Select(i => Draft("admin1", "client1", fromClient: i % 2 == 0, body: $"m{i}")).ToList();
        var appends = drafts.Select(d => Messages.Append(d, NextId)).ToList();
        await Task.WhenAll(appends.Select(a => a.Committed)).WaitAsync(s_timeout);
        var sent = drafts.Zip(appends, (d, a) => AsStored(d, a.Id)).ToList();
        var page1 = await Messages.GetPageAsync("admin1", "client1", null, 10);
        var page2 = await Messages.GetPageAsync("admin1", "client1", page1[^1].Id, 10);
        var page3 = await Messages.GetPageAsync("admin1", "client1", page2[^1].Id, 10);
        var all = page1.Concat(page2).Concat(page3).ToList();
        Assert.Equal(sent.OrderByDescending(m => m.Id).Select(m => m.Id), all.Select(m => m.Id));
        Assert.Equal(5, page3.Count);
        Assert.Equal(sent[0], all[^1]);                               // every field round-trips (times to the ms)
        Assert.Empty(await Messages.GetPageAsync("admin1", "client2", null, 10));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(101)]
    public async Task GetPage_LimitOutOfRange_IsRejected(int limit) =>
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Messages.GetPageAsync("admin1", "client1", null, limit));

    [Fact]
    public async Task Append_ManyConcurrentWriters_AllStoredOnce_InIdOrder_WithGroupCommit()
    {
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var tasks = new List<Task>();
            for (var i = 0; i < 150; i++) tasks.Add(Messages.Append(Draft("admin1", "client2"), NextId).Committed);
            await Task.WhenAll(tasks);
        }));
        await Task.WhenAll(writers).WaitAsync(s_timeout);
        var stored = await WalkAsync("admin1", "client2", pageSize: 100);
        Assert.Equal(1200, stored.Count);
        Assert.Equal(stored.Distinct().Count(), stored.Count);
        Assert.Equal(stored.OrderDescending(), stored);
        Assert.Equal(0, Messages.QueueDepth);
    }

    [Fact]
    public async Task GetPage_WhileWriting_NeverSkipsOrRepeats()
    {
        // Ids grow with time, so a page taken while newer messages arrive only ever misses messages newer than the first page,
        // even with several writers whose commits can finish out of id order.
        var writing = Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 60; i++) await Messages.Append(Draft("admin2", "client3"), NextId).Committed;
        })));
        await Task.Delay(50);
        var seen = await WalkAsync("admin2", "client3");
        await writing.WaitAsync(s_timeout);
        Assert.Equal(seen.Distinct().Count(), seen.Count);
        var all = (await Messages.GetPageAsync("admin2", "client3", null, 100)).Select(m => m.Id).ToList();
        if (seen.Count > 0)
        {
            // Everything at or below the first id seen is in the walk: nothing skipped.
            var first = seen[0];
            var expected = new List<long>();
            long? b = null;
            while (true)
            {
                var page = await Messages.GetPageAsync("admin2", "client3", b, 100);
                if (page.Count == 0) break;
                expected.AddRange(page.Where(m => m.Id <= first).Select(m => m.Id));
                b = page[^1].Id;
            }
            Assert.Equal(expected, seen);
        }
        Assert.NotEmpty(all);
    }

    [Fact]
    public async Task MarkSeen_OnlyByTheReceiver_AndOnlyOnce()
    {
        var m = await StoreAsync("admin1", "client1");                 // client1 → admin1
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_123);
        Assert.Equal(SeenOutcome.NotReceiver, (await Messages.MarkSeenAsync(m.Id, "client1", at)).Outcome);
        var first = await Messages.MarkSeenAsync(m.Id, "admin1", at);
        Assert.Equal((SeenOutcome.Marked, "client1"), (first.Outcome, first.SenderId));
        Assert.Equal([m.Id], first.MarkedIds);
        var again = await Messages.MarkSeenAsync(m.Id, "admin1", at.AddMinutes(1));
        Assert.Equal(SeenOutcome.AlreadySeen, again.Outcome);
        Assert.Equal(at, again.SeenAt);                                // the first seen-at stays
        var stored = await Messages.FindAsync(m.Id);
        Assert.True(stored!.Seen);
        Assert.Equal(at, stored.SeenAt);
        Assert.Equal(SeenOutcome.NotFound, (await Messages.MarkSeenAsync(424242, "admin1", at)).Outcome);
    }

    [Fact]
    public async Task MarkSeen_NamingTheWrongSender_ChangesNothing()
    {
        var m = await StoreAsync("admin1", "client1");                 // client1 → admin1
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_123);
        var wrong = await Messages.MarkSeenAsync(m.Id, "admin1", at, expectedSenderId: "client2");
        Assert.Equal((SeenOutcome.NotSender, "client1"), (wrong.Outcome, wrong.SenderId));
        Assert.False((await Messages.FindAsync(m.Id))!.Seen);
        var right = await Messages.MarkSeenAsync(m.Id, "admin1", at, expectedSenderId: "client1");
        Assert.Equal(SeenOutcome.Marked, right.Outcome);
    }

    [Fact]
    public async Task MarkSeenUpTo_MarksTheReadersUnseenMessagesUpToTheId()
    {
        var fromClient = new List<ChatMessage>();
        for (var i = 0; i < 4; i++) fromClient.Add(await StoreAsync("admin1", "client3"));
        var fromAdmin = await StoreAsync("admin1", "client3", fromClient: false);
        var later = await StoreAsync("admin1", "client3");
        var at = DateTimeOffset.UtcNow;
        var result = await Messages.MarkSeenUpToAsync("admin1", "client3", fromAdmin.Id, "admin1", at);
        Assert.Equal(SeenOutcome.Marked, result.Outcome);
        Assert.Equal(fromClient.Select(m => m.Id), result.MarkedIds);   // not the admin's own message, not the later one
        Assert.Equal("client3", result.SenderId);
        Assert.Equal(SeenOutcome.AlreadySeen, (await Messages.MarkSeenUpToAsync("admin1", "client3", fromAdmin.Id, "admin1", at)).Outcome);
        Assert.False((await Messages.FindAsync(later.Id))!.Seen);
        Assert.Equal(SeenOutcome.NotReceiver, (await Messages.MarkSeenUpToAsync("admin1", "client3", later.Id, "client1", at)).Outcome);
    }

    [Fact]
    public async Task GetConversations_GivesLastMessageAndUnreadCountPerSide()
    {
        await StoreAsync("admin1", "client1");
        await StoreAsync("admin1", "client1");
        var lastC1 = await StoreAsync("admin1", "client1", fromClient: false);
        var lastC2 = await StoreAsync("admin1", "client2");
        var admin = await Messages.GetConversationsAsync("admin1");
        Assert.Equal(["client2", "client1"], admin.Select(c => c.ClientId));   // newest conversation first
        Assert.Equal(lastC2.Id, admin[0].LastMessage!.Id);
        Assert.Equal(1, admin[0].UnreadCount);
        Assert.Equal(2, admin[1].UnreadCount);
        var client = Assert.Single(await Messages.GetConversationsAsync("client1"));
        Assert.Equal((lastC1.Id, 1), (client.LastMessage!.Id, client.UnreadCount));
        Assert.Empty(await Messages.GetConversationsAsync("client3"));
    }

    [Fact]
    public async Task GetUnread_GivesTheUnseenMessagesToTheUser_ByConversation_InIdOrder()
    {
        var first = await StoreAsync("admin1", "client1");
        await StoreAsync("admin1", "client1", fromClient: false);                 // to client1: not admin1's
        var second = await StoreAsync("admin1", "client2");
        var seen = await StoreAsync("admin1", "client2");
        await Messages.MarkSeenAsync(seen.Id, "admin1", DateTimeOffset.UtcNow);
        var third = await StoreAsync("admin2", "client1");                         // another admin's
        Assert.Equal([new UnreadMessage("admin1", "client1", first.Id), new UnreadMessage("admin1", "client2", second.Id)],
            await Messages.GetUnreadAsync("admin1"));
        Assert.Equal([third.Id], (await Messages.GetUnreadAsync("admin2")).Select(u => u.Id));
        Assert.Empty(await Messages.GetUnreadAsync("client3"));
    }

    [Fact]
    public async Task FindMany_GivesKnownUsersIncludingDeleted_LeavesOutUnknownOnes()
    {
        await Users.DeleteAsync("client3", 2, DateTimeOffset.UtcNow);
        var found = await Users.FindManyAsync(["admin1", "client3", "nobody", "client1", ""]);
        Assert.Equal(["admin1", "client1", "client3"], found.Keys.Order());
        Assert.True(found["client3"].IsDeleted);
        Assert.Equal("Admin One", found["admin1"].Name);
        Assert.Empty(await Users.FindManyAsync([]));
    }

    [Fact]
    public async Task Append_SqlMetacharactersInEveryTextField_RoundTripUnchanged()
    {
        var evil = "x'); DROP TABLE messages; -- \" \\ % _ ` ; \0 ünï 💬";
        var t = DateTimeOffset.UtcNow;
        var admin = "a'--" + "\"`";
        var client = "c;DROP\\%_";
        await Users.UpsertAsync(admin, evil, UserRole.Admin, 1, t);
        await Users.UpsertAsync(client, evil, UserRole.Client, 1, t);
        var m = await StoreAsync(new ChatMessageDraft(admin, client, client, admin, Encoding.UTF8.GetBytes(evil), DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000)));
        Assert.Equal(m, (await Messages.GetPageAsync(admin, client, null, 1)).Single());
        Assert.Equal(evil, (await Users.FindAsync(admin))!.Name);
        Assert.Equal(5 + 2, (await Users.ListAsync()).Count);
    }

    [Fact]
    public async Task Append_ManyThreads_IdsTakenOneAtATimeInOrder_NoNewerIdCommittedBeforeAnOlderOne()
    {
        // The allocator runs under the store's lock, one call at a time, and each id is registered and queued before the
        // next is taken: so whenever the database shows an id, every older id taken before is there too (none failed here).
        var taken = new ConcurrentQueue<long>();
        var inside = 0;
        var overlapped = false;
        long Allocate()
        {
            if (Interlocked.Increment(ref inside) != 1) overlapped = true;
            var id = NextId();
            taken.Enqueue(id);
            Interlocked.Decrement(ref inside);
            return id;
        }
        var writers = Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            var commits = new List<Task>();
            for (var i = 0; i < 100; i++)
            {
                var append = Messages.Append(Draft("admin2", "client1"), Allocate);
                Assert.True(append.Id > 0);
                commits.Add(append.Committed);
                if (i % 10 == 0) await Task.Yield();
            }
            await Task.WhenAll(commits);
        })));
        var checks = 0;
        while (!writers.IsCompleted || checks == 0)
        {
            var takenBefore = taken.ToArray();                        // taken (so registered) before the read below
            var visible = await CommittedIdsAsync("admin2", "client1");
            if (visible.Count > 0)
            {
                var newest = visible.Max();
                Assert.All(takenBefore.Where(id => id < newest), id => Assert.Contains(id, visible));
            }
            var walk = await WalkAsync("admin2", "client1", pageSize: 50);
            var committed = await CommittedIdsAsync("admin2", "client1");
            if (walk.Count > 0) Assert.All(committed.Where(id => id <= walk[0]), id => Assert.Contains(id, walk));   // no skip
            checks++;
        }
        await writers.WaitAsync(s_timeout);
        Assert.False(overlapped, "the allocator was called by two appends at once");
        Assert.Equal(taken.Order(), taken);                            // taken in increasing order
        Assert.Equal(taken.OrderDescending(), await WalkAsync("admin2", "client1", pageSize: 100));
        Assert.Equal(0, Messages.QueueDepth);
    }

    [Fact]
    public async Task Append_PartiesAreNotChecked_UnknownOrDeletedUsersAreStored()
    {
        // Who may write to whom is the chat handler's rule (the Broker): the store only stores.
        await Users.DeleteAsync("client2", 5, DateTimeOffset.UtcNow);
        var toDeleted = await StoreAsync("admin1", "client2");
        var unknown = await StoreAsync(Draft("admin1", "nobody"));
        var notParty = await StoreAsync(new ChatMessageDraft("admin1", "client1", "client3", "admin1", "hi"u8.ToArray(), DateTimeOffset.UtcNow));
        foreach (var m in new[] { toDeleted, unknown, notParty }) Assert.NotNull(await Messages.FindAsync(m.Id));
    }

    public static TheoryData<string, ChatMessageDraft, MessageRejection> BadDrafts => new()
    {
        { "empty admin id", new ChatMessageDraft("", "client1", "client1", "admin1", "hi"u8.ToArray(), DateTimeOffset.UtcNow), MessageRejection.InvalidParty },
        { "65-char sender", new ChatMessageDraft("admin1", "client1", new string('s', 65), "admin1", "hi"u8.ToArray(), DateTimeOffset.UtcNow), MessageRejection.InvalidParty },
        { "null receiver", new ChatMessageDraft("admin1", "client1", "client1", null!, "hi"u8.ToArray(), DateTimeOffset.UtcNow), MessageRejection.InvalidParty },
        { "body over the limit", new ChatMessageDraft("admin1", "client1", "client1", "admin1", new byte[65_537], DateTimeOffset.UtcNow), MessageRejection.BodyTooLarge },
        { "body not UTF-8", new ChatMessageDraft("admin1", "client1", "client1", "admin1", new byte[] { 0x68, 0xC3, 0x28 }, DateTimeOffset.UtcNow), MessageRejection.BodyNotUtf8 },
    };

    [Theory]
    [MemberData(nameof(BadDrafts))]
    public async Task Append_BadDraft_ThrowsTypedRejectionWithAFixedText_BeforeTakingAnId(string because, ChatMessageDraft draft, MessageRejection reason)
    {
        var allocated = false;
        var ex = Assert.Throws<MessageRejectedException>(() => Messages.Append(draft, () => { allocated = true; return NextId(); }));
        Assert.Equal(reason, ex.Reason);
        Assert.Equal(MessageRejectedException.TextOf(reason), ex.Message);
        Assert.DoesNotContain("Parameter", ex.Message, StringComparison.Ordinal);
        Assert.False(allocated, because);
        Assert.Equal(0, Messages.QueueDepth);
        Assert.Empty(await Messages.GetPageAsync("admin1", "client1", null, 10));
    }

    [Fact]
    public async Task Append_AllocatorGivesANonPositiveId_ThrowsTypedRejection_NothingQueued()
    {
        var zero = Assert.Throws<MessageRejectedException>(() => Messages.Append(Draft("admin1", "client1"), () => 0));
        Assert.Equal((MessageRejection.InvalidId, "message id must be positive"), (zero.Reason, zero.Message));
        Assert.Equal(0, Messages.QueueDepth);
        Assert.Empty(await Messages.GetPageAsync("admin1", "client1", null, 10));
    }

    [Fact]
    public async Task Append_PresetId_IsStoredUnderThatId()
    {
        var append = Messages.Append(Draft("admin1", "client1"), () => 5);
        Assert.Equal(5, append.Id);
        await append.Committed.WaitAsync(s_timeout);
        Assert.Equal([5L], (await Messages.GetPageAsync("admin1", "client1", null, 10)).Select(m => m.Id));
    }

    [Fact]
    public async Task Append_IdAlreadyStored_IsSkipped_NotStoredTwiceNorFailed()
    {
        // What a retried batch meets when its first commit went through but the answer was lost in the outage.
        var first = await StoreAsync(Draft("admin2", "client2", body: "first"));
        var again = Messages.Append(Draft("admin2", "client2", body: "again"), () => first.Id);
        await again.Committed.WaitAsync(s_timeout);
        Assert.Equal([first.Id], await CommittedIdsAsync("admin2", "client2"));
        Assert.Equal("first", (await Messages.FindAsync(first.Id))!.Body);
    }

    [Fact]
    public async Task Append_RowTheDatabaseRefuses_FailsWithAFixedText_TheRestOfTheBatchIsStored()
    {
        // No foreign keys reach the users table (a message naming an unknown user is stored); a row can still be refused
        // by the database. A trigger plays that part here.
        await using (var connection = SqlDialect.Create(Options).CreateConnection())
        {
            await connection.ExecuteAsync(_provider == StorageProvider.MySql
                ? "CREATE TRIGGER refuse_marked BEFORE INSERT ON messages FOR EACH ROW BEGIN IF NEW.body = 'refuse me' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'driver detail: refused by trigger'; END IF; END"
                : "CREATE TRIGGER refuse_marked BEFORE INSERT ON messages WHEN NEW.body = 'refuse me' BEGIN SELECT RAISE(ABORT, 'driver detail: refused by trigger'); END");
        }
        var good = Enumerable.Range(0, 3).Select(_ => Messages.Append(Draft("admin1", "client3"), NextId)).ToList();
        var bad = Messages.Append(Draft("admin1", "client3", body: "refuse me"), NextId);
        var ex = await Assert.ThrowsAsync<MessageRejectedException>(() => bad.Committed.WaitAsync(s_timeout));
        Assert.Equal((MessageRejection.RefusedByDatabase, "message refused by storage"), (ex.Reason, ex.Message));
        Assert.Contains("refused by trigger", ex.InnerException!.Message, StringComparison.Ordinal);   // the detail is kept for the log
        await Task.WhenAll(good.Select(a => a.Committed)).WaitAsync(s_timeout);
        Assert.Equal(good.Select(a => a.Id).OrderDescending(), (await Messages.GetPageAsync("admin1", "client3", null, 10)).Select(m => m.Id));
    }
}

[Trait("Category", "Integration")]
public sealed class SqliteStoreTests() : StoreTests(StorageProvider.Sqlite);

[Trait("Category", "Integration")]
public sealed class MySqlStoreTests() : StoreTests(StorageProvider.MySql);

public class MySqlTimeoutTests
{
    [Fact]
    public void WithTimeouts_NoneGiven_BoundedByTheWriteTimeout()
    {
        var result = new MySqlConnector.MySqlConnectionStringBuilder(SqlDialect.WithTimeouts("Server=db;User ID=u;Password=p;Database=w", 5000));
        Assert.Equal((5u, 10u), (result.ConnectionTimeout, result.DefaultCommandTimeout));
        Assert.Equal(("db", "w"), (result.Server, result.Database));
    }

    [Fact]
    public void WithTimeouts_GivenInTheConnectionString_AreKept()
    {
        var result = new MySqlConnector.MySqlConnectionStringBuilder(SqlDialect.WithTimeouts("Server=db;connect timeout=3;Default Command Timeout=60", 5000));
        Assert.Equal((3u, 60u), (result.ConnectionTimeout, result.DefaultCommandTimeout));
    }
}
