using System.Collections.Concurrent;
using System.Data.Common;
using System.Text;
using Dapper;

namespace WsBroker.Persistence.Tests;

/// <summary>What "nothing lost, nothing twice" needs from the message store: client-msg-ids, the settled callback, replay
/// after an id, delivered marks, and the schema that holds them. Runs once per provider (derived classes at the end).</summary>
public abstract class MessageDeliveryTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);
    private readonly StorageProvider _provider;
    private Func<Task> _drop = () => Task.CompletedTask;
    private long _nextId = 1000;

    protected MessageDeliveryTests(StorageProvider provider) => _provider = provider;

    private PersistenceStores Stores { get; set; } = null!;
    private PersistenceOptions Options { get; set; } = null!;
    private IMessageStore Messages => Stores.Messages;

    public async Task InitializeAsync()
    {
        (Options, _drop) = await TestDatabases.CreateAsync(_provider);
        Stores = await StoreFactory.CreateAsync(Options).WaitAsync(s_timeout);
    }

    public async Task DisposeAsync()
    {
        await Stores.DisposeAsync();
        await _drop();
    }

    private long NextId() => Interlocked.Increment(ref _nextId);

    private static ChatMessageDraft Draft(string admin, string client, string? clientMsgId = null, bool fromClient = true, string body = "hi") =>
        new(admin, client, fromClient ? client : admin, fromClient ? admin : client, Encoding.UTF8.GetBytes(body),
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123), clientMsgId);

    private async Task<long> StoreAsync(ChatMessageDraft draft)
    {
        var append = Messages.Append(draft, NextId);
        await append.Committed.WaitAsync(s_timeout);
        return append.Id;
    }

    private DbConnection Connect() => SqlDialect.Create(Options).CreateConnection();

    private async Task<List<long>> RowsWithClientMsgIdAsync(string sender, string clientMsgId)
    {
        await using var connection = Connect();
        return (await connection.QueryAsync<long>("SELECT id FROM messages WHERE sender_id = @sender AND client_msg_id = @clientMsgId",
            new { sender, clientMsgId })).ToList();
    }

    private async Task InsertDirectlyAsync(long id, string admin, string client)
    {
        await using var connection = Connect();
        await connection.ExecuteAsync(
            "INSERT INTO messages (id, admin_id, client_id, sender_id, receiver_id, body, sent_at, seen) VALUES (@id, @admin, @client, @client, @admin, 'direct', 1, 0)",
            new { id, admin, client });
    }

    /// <summary>Holds back the commit of the message that will get <paramref name="id"/>: another transaction inserts that id
    /// and keeps it uncommitted (SQLite: it holds the write lock; MariaDB: the row lock), then rolls back when disposed.</summary>
    private async Task<IAsyncDisposable> HoldAsync(long id)
    {
        var connection = Connect();
        await connection.OpenAsync();
        var tx = await connection.BeginTransactionAsync();
        await connection.ExecuteAsync(
            "INSERT INTO messages (id, admin_id, client_id, sender_id, receiver_id, body, sent_at, seen) VALUES (@id, 'hold', 'hold', 'hold', 'hold', 'hold', 1, 0)",
            new { id }, tx);
        return new Hold(connection, tx);
    }

    private sealed class Hold(DbConnection connection, DbTransaction tx) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await tx.RollbackAsync();
            await tx.DisposeAsync();
            await connection.DisposeAsync();
        }
    }

    // ---- schema -------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Migrations_FreshDatabase_AtTheNewestVersion()
    {
        await using var connection = Connect();
        Assert.Equal(SqlDialect.Create(Options).Migrations.Count, await connection.ExecuteScalarAsync<int>("SELECT MAX(version) FROM schema_version"));
        Assert.Equal(2, SqlDialect.Create(Options).Migrations.Count);
    }

    [Fact]
    public async Task Migrations_DatabaseOfThePreviousSchema_IsUpgraded_OldRowsKept()
    {
        var (options, drop) = await TestDatabases.CreateAsync(_provider);
        try
        {
            Assert.Equal(1, await Migrator.MigrateAsync(SqlDialect.Create(options), CancellationToken.None, upTo: 1));
            await using (var connection = SqlDialect.Create(options).CreateConnection())
            {
                await connection.ExecuteAsync(
                    "INSERT INTO messages (id, admin_id, client_id, sender_id, receiver_id, body, sent_at, seen, seen_at) VALUES (5, 'admin1', 'client1', 'client1', 'admin1', 'old', 1700000000000, 1, 1700000000001)");
            }
            await using var stores = await StoreFactory.CreateAsync(options).WaitAsync(s_timeout);
            var old = await stores.Messages.FindAsync(5);
            Assert.Equal(("old", true, (string?)null, (DateTimeOffset?)null), (old!.Body, old.Seen, old.ClientMsgId, old.DeliveredAt));
            var first = stores.Messages.Append(Draft("admin1", "client1", "c-1"), () => 6);
            var noId1 = stores.Messages.Append(Draft("admin1", "client1"), () => 7);
            var noId2 = stores.Messages.Append(Draft("admin1", "client1"), () => 8);     // NULL client-msg-ids never collide
            await Task.WhenAll(first.Committed, noId1.Committed, noId2.Committed).WaitAsync(s_timeout);
            var again = stores.Messages.Append(Draft("admin1", "client1", "c-1"), () => 9);
            Assert.Equal(6, (await Assert.ThrowsAsync<DuplicateMessageException>(() => again.Committed.WaitAsync(s_timeout))).OriginalId);
            Assert.Equal([5L, 6, 7, 8], (await stores.Messages.GetAfterAsync("admin1", null, 0, 100)).Select(m => m.Id));
            await using var check = SqlDialect.Create(options).CreateConnection();
            Assert.Equal(2, await check.ExecuteScalarAsync<int>("SELECT MAX(version) FROM schema_version"));
        }
        finally
        {
            await drop();
        }
    }

    // ---- client-msg-id ------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Append_SameClientMsgIdInFlight_ReturnsTheFirstAppend_AsDuplicate_OneRow()
    {
        var held = NextId();
        var allocations = 0;
        var settled = new ConcurrentQueue<long>();
        PendingAppend first, second;
        await using (await HoldAsync(held))
        {
            first = Messages.Append(Draft("admin1", "client1", "m-1"), () => { allocations++; return held; }, (id, _) => settled.Enqueue(id));
            second = Messages.Append(Draft("admin1", "client1", "m-1", body: "resent"), () => { allocations++; return NextId(); }, (id, _) => settled.Enqueue(-id));
            Assert.Equal((held, false), (first.Id, first.Duplicate));
            Assert.Equal((held, true), (second.Id, second.Duplicate));
            Assert.Same(first.Committed, second.Committed);
            Assert.Equal(1, allocations);
            await Task.Delay(100);
            Assert.False(first.Committed.IsCompleted);
        }
        await first.Committed.WaitAsync(s_timeout);
        Assert.Equal([held], await RowsWithClientMsgIdAsync("client1", "m-1"));
        Assert.Equal([held], settled);                                  // no settled call for the duplicate
        var stored = await Messages.FindByClientMsgIdAsync("client1", "m-1");
        Assert.Equal((held, "hi", "m-1"), (stored!.Id, stored.Body, stored.ClientMsgId));
        Assert.Null(await Messages.FindByClientMsgIdAsync("admin1", "m-1"));   // per sender
    }

    [Fact]
    public async Task Append_SameClientMsgIdFromEightThreadsAtOnce_OneRow_EveryAnswerNamesIt()
    {
        for (var round = 0; round < 5; round++)
        {
            var clientMsgId = $"burst-{round}";
            using var start = new Barrier(8);
            var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                start.SignalAndWait();
                var append = Messages.Append(Draft("admin2", "client2", clientMsgId), NextId);
                try
                {
                    await append.Committed.WaitAsync(s_timeout);
                    return append.Id;
                }
                catch (DuplicateMessageException ex)
                {
                    return ex.OriginalId;
                }
            }))).WaitAsync(s_timeout);
            var rows = await RowsWithClientMsgIdAsync("client2", clientMsgId);
            Assert.Single(rows);
            Assert.All(outcomes, id => Assert.Equal(rows[0], id));
        }
        Assert.Equal(0, Messages.QueueDepth);
    }

    [Fact]
    public async Task Append_ClientMsgIdCommittedMeanwhile_FailsWithDuplicateMessageException_TheRestOfTheBatchIsStored()
    {
        // What the broker meets when the resend arrives between its FindByClientMsgIdAsync and Append: the unique index.
        var original = await StoreAsync(Draft("admin1", "client3", "dup-1", body: "original"));
        var blocker = NextId();
        var settled = new ConcurrentQueue<(long Id, Exception? Error)>();
        void Record(long id, Exception? error) => settled.Enqueue((id, error));
        PendingAppend good1, dup, good2, first;
        await using (await HoldAsync(blocker))
        {
            first = Messages.Append(Draft("admin1", "client3"), () => blocker, Record);
            await Task.Delay(200);                                      // the writer holds `first`: the next three form one batch
            good1 = Messages.Append(Draft("admin1", "client3", "ok-1"), NextId, Record);
            dup = Messages.Append(Draft("admin1", "client3", "dup-1", body: "resent"), NextId, Record);
            good2 = Messages.Append(Draft("admin1", "client3"), NextId, Record);
        }
        Assert.False(dup.Duplicate);
        var ex = await Assert.ThrowsAsync<DuplicateMessageException>(() => dup.Committed.WaitAsync(s_timeout));
        Assert.Equal((original, "duplicate client-msg-id"), (ex.OriginalId, ex.Message));
        await Task.WhenAll(first.Committed, good1.Committed, good2.Committed).WaitAsync(s_timeout);
        Assert.Equal([original], await RowsWithClientMsgIdAsync("client3", "dup-1"));
        Assert.Equal([original, first.Id, good1.Id, good2.Id], (await Messages.GetAfterAsync("admin1", "client3", 0, 10)).Select(m => m.Id));
        Assert.Equal([first.Id, good1.Id, dup.Id, good2.Id], settled.Select(s => s.Id));
        Assert.Same(ex, settled.Single(s => s.Id == dup.Id).Error);
        Assert.All(settled.Where(s => s.Id != dup.Id), s => Assert.Null(s.Error));
        Assert.Equal("original", (await Messages.FindByClientMsgIdAsync("client3", "dup-1"))!.Body);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("a.b")]
    [InlineData("a/b")]
    [InlineData("é")]
    [InlineData("x\n")]
    [InlineData("x\0")]
    [InlineData("11111111112222222222333333333344444444445555555555666666666677777")]   // 65
    public async Task Append_InvalidClientMsgId_ThrowsTypedRejectionBeforeTakingAnId(string clientMsgId)
    {
        var allocated = false;
        var ex = Assert.Throws<MessageRejectedException>(() => Messages.Append(Draft("admin1", "client1", clientMsgId), () => { allocated = true; return NextId(); }));
        Assert.Equal((MessageRejection.InvalidClientMsgId, "invalid client-msg-id"), (ex.Reason, ex.Message));
        Assert.False(allocated);
        Assert.Equal(0, Messages.QueueDepth);
        var find = await Assert.ThrowsAsync<MessageRejectedException>(() => Messages.FindByClientMsgIdAsync("client1", clientMsgId));
        Assert.Equal(MessageRejection.InvalidClientMsgId, find.Reason);
    }

    [Fact]
    public async Task Append_LongestAndEveryAllowedCharacter_IsStored()
    {
        var longest = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        Assert.Equal(64, longest.Length);
        var id = await StoreAsync(Draft("admin1", "client1", longest));
        Assert.Equal(longest, (await Messages.FindAsync(id))!.ClientMsgId);
        Assert.Equal(longest, (await Messages.GetPageAsync("admin1", "client1", null, 1)).Single().ClientMsgId);
        Assert.Null(await Messages.FindByClientMsgIdAsync("client1", longest.ToLowerInvariant()));   // case matters
    }

    // ---- settled ------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Settled_ManyAppendsFromFourThreads_InIdOrder_OneAtATime_OnceEach_BeforeCommitted()
    {
        var order = new List<long>();
        var settledAt = new ConcurrentDictionary<long, long>();
        var completedAt = new ConcurrentDictionary<long, long>();
        long clock = 0;
        var inside = 0;
        var overlapped = false;
        var outOfOrder = false;
        void Settled(long id, Exception? error)
        {
            if (Interlocked.Increment(ref inside) != 1) overlapped = true;
            if (order.Count > 0 && id <= order[^1]) outOfOrder = true;
            order.Add(id);
            if (!settledAt.TryAdd(id, Interlocked.Increment(ref clock)) || error is not null) outOfOrder = true;
            Thread.SpinWait(50);
            Interlocked.Decrement(ref inside);
        }
        var ids = await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var appends = new List<PendingAppend>();
            for (var i = 0; i < 500; i++)
            {
                var append = Messages.Append(Draft("admin2", "client1", $"s-{Guid.NewGuid():N}"), NextId, Settled);
                _ = append.Committed.ContinueWith(_ => completedAt[append.Id] = Interlocked.Increment(ref clock), TaskScheduler.Default);
                appends.Add(append);
                if (i % 25 == 0) await Task.Yield();
            }
            await Task.WhenAll(appends.Select(a => a.Committed));
            return appends.Select(a => a.Id).ToList();
        }))).WaitAsync(s_timeout);
        var all = ids.SelectMany(x => x).Order().ToList();
        Assert.Equal(2000, all.Distinct().Count());
        Assert.False(overlapped, "settled ran for two messages at once");
        Assert.False(outOfOrder, "settled out of id order, twice, or with an error");
        Assert.Equal(all, order);
        await WaitUntilAsync(() => completedAt.Count == 2000);         // the last continuations
        Assert.All(all, id => Assert.True(settledAt[id] < completedAt[id], $"{id}: Committed completed before settled"));
        Assert.Equal(2000, (await Messages.GetAfterAsync("admin2", "client1", 0, 10_000)).Count);
    }

    [Fact]
    public async Task Settled_AppendRejectedAfterTakingItsId_IsSettledWithTheRejection_InOrder()
    {
        var settled = new ConcurrentQueue<(long Id, Exception? Error)>();
        void Record(long id, Exception? error) => settled.Enqueue((id, error));
        var held = NextId();
        PendingAppend first;
        MessageRejectedException invalid, duplicate;
        await using (await HoldAsync(held))
        {
            first = Messages.Append(Draft("admin1", "client2"), () => held, Record);
            invalid = Assert.Throws<MessageRejectedException>(() => Messages.Append(Draft("admin1", "client2"), () => 0, Record));
            duplicate = Assert.Throws<MessageRejectedException>(() => Messages.Append(Draft("admin1", "client2"), () => held, Record));
            await Task.Delay(100);
            Assert.Empty(settled);                                      // they wait for the older id
        }
        await first.Committed.WaitAsync(s_timeout);
        await WaitUntilAsync(() => settled.Count == 3);
        Assert.Equal([(held, (Exception?)null), (0, invalid), (held, duplicate)], settled);
        Assert.Equal((MessageRejection.InvalidId, MessageRejection.DuplicateId), (invalid.Reason, duplicate.Reason));
    }

    [Fact]
    public async Task Settled_ThrowingCallback_IsLogged_TheWriterGoesOn()
    {
        var a = Messages.Append(Draft("admin1", "client1"), NextId, (_, _) => throw new InvalidOperationException("callback bug"));
        await a.Committed.WaitAsync(s_timeout);
        var b = Messages.Append(Draft("admin1", "client1"), NextId);
        await b.Committed.WaitAsync(s_timeout);
        Assert.Equal([a.Id, b.Id], (await Messages.GetAfterAsync("admin1", "client1", 0, 10)).Select(m => m.Id));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var until = DateTime.UtcNow + s_timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, "timed out waiting");
            await Task.Delay(10);
        }
    }

    // ---- replay -------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task GetAfter_AscendingAfterTheId_Limited_PerConversationOrAdminWide()
    {
        var ids = new List<(long Id, string Client)>();
        foreach (var client in new[] { "client1", "client2", "client1", "client3", "client1", "client2" })
            ids.Add((await StoreAsync(Draft("admin1", client, fromClient: ids.Count % 2 == 0)), client));
        await StoreAsync(Draft("admin2", "client1"));                  // another admin
        var c1 = ids.Where(x => x.Client == "client1").Select(x => x.Id).ToList();
        Assert.Equal(c1, (await Messages.GetAfterAsync("admin1", "client1", 0, 100)).Select(m => m.Id));
        Assert.Equal(c1.Skip(1), (await Messages.GetAfterAsync("admin1", "client1", c1[0], 100)).Select(m => m.Id));
        Assert.Equal(c1.Take(2), (await Messages.GetAfterAsync("admin1", "client1", 0, 2)).Select(m => m.Id));
        Assert.Equal(ids.Select(x => x.Id), (await Messages.GetAfterAsync("admin1", null, 0, 100)).Select(m => m.Id));
        Assert.Equal(ids.Skip(3).Take(2).Select(x => x.Id), (await Messages.GetAfterAsync("admin1", null, ids[2].Id, 2)).Select(m => m.Id));
        Assert.Empty(await Messages.GetAfterAsync("admin1", null, ids[^1].Id, 100));
        Assert.Empty(await Messages.GetAfterAsync("nobody", null, 0, 100));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Messages.GetAfterAsync("admin1", null, 0, 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Messages.GetAfterAsync("admin1", null, 0, 10_001));
    }

    [Fact]
    public async Task GetAfter_AnOlderIdStillInFlight_StopsShortOfIt_ANewerCommittedIdIsNotReturnedPastIt()
    {
        var before = await StoreAsync(Draft("admin2", "client3"));
        var held = NextId();
        var newer = held + 100;                                         // committed by someone else while `held` is in flight
        await InsertDirectlyAsync(newer, "admin2", "client3");
        PendingAppend append;
        await using (await HoldAsync(held))
        {
            append = Messages.Append(Draft("admin2", "client3"), () => held);
            Assert.Equal([before], (await Messages.GetAfterAsync("admin2", "client3", 0, 100)).Select(m => m.Id));
            Assert.Equal([before], (await Messages.GetAfterAsync("admin2", null, 0, 100)).Select(m => m.Id));
            Assert.Empty(await Messages.GetAfterAsync("admin2", "client3", before, 100));
        }
        await append.Committed.WaitAsync(s_timeout);
        Assert.Equal([held, newer], (await Messages.GetAfterAsync("admin2", "client3", before, 100)).Select(m => m.Id));
        Assert.Equal([before, held, newer], (await Messages.GetAfterAsync("admin2", null, 0, 100)).Select(m => m.Id));
    }

    // The since: hand-off race: a committed message's settled callback (the broker's publish) may already have handed it to
    // a router snapshot taken before a new subscription; the subscription's replay, read after that, must still return it.
    [Fact]
    public async Task GetAfter_CommittedIdWhoseSettledCallbackIsRunning_IsReturned_AnUndecidedNewerIdStillStopsTheRead()
    {
        var before = await StoreAsync(Draft("admin3", "client4"));
        using var inCallback = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var publishing = Messages.Append(Draft("admin3", "client4"), NextId, (_, _) => { inCallback.Set(); release.Wait(s_timeout); });
        try
        {
            Assert.True(inCallback.Wait(s_timeout), "the settled callback never ran");
            Assert.False(publishing.Committed.IsCompleted);             // still settling: the id is still registered
            Assert.Equal([before, publishing.Id], (await Messages.GetAfterAsync("admin3", "client4", 0, 100)).Select(m => m.Id));
            Assert.Equal([before, publishing.Id], (await Messages.GetAfterAsync("admin3", null, 0, 100)).Select(m => m.Id));
            Assert.Equal([publishing.Id, before], (await Messages.GetPageAsync("admin3", "client4", null, 100)).Select(m => m.Id));
            // A newer append is queued behind the blocked writer: undecided, it still stops the read short of it.
            var newer = Messages.Append(Draft("admin3", "client4"), NextId);
            Assert.Empty(await Messages.GetAfterAsync("admin3", "client4", publishing.Id, 100));
            release.Set();
            await newer.Committed.WaitAsync(s_timeout);
            Assert.Equal([newer.Id], (await Messages.GetAfterAsync("admin3", "client4", publishing.Id, 100)).Select(m => m.Id));
        }
        finally
        {
            release.Set();
        }
        await publishing.Committed.WaitAsync(s_timeout);
    }

    // ---- delivered ----------------------------------------------------------------------------------------------------

    [Fact]
    public async Task MarkDelivered_OnlyTheReceiversMessages_OnlyOnce_UnknownIdsIgnored()
    {
        var toAdmin = await StoreAsync(Draft("admin1", "client1", "d-1"));                 // client1 → admin1
        var toClient = await StoreAsync(Draft("admin1", "client1", fromClient: false));    // admin1 → client1
        var toAdmin2 = await StoreAsync(Draft("admin1", "client2"));                       // client2 → admin1
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_123_456);
        Assert.Empty(await Messages.MarkDeliveredAsync([], "admin1", at));
        Assert.Equal([toAdmin, toAdmin2], await Messages.MarkDeliveredAsync([toAdmin2, toClient, 999_999_999, toAdmin, toAdmin], "admin1", at));
        Assert.Empty(await Messages.MarkDeliveredAsync([toAdmin, toAdmin2], "admin1", at.AddSeconds(5)));   // once
        Assert.Empty(await Messages.MarkDeliveredAsync([toAdmin], "client1", at));                           // the sender is not the receiver
        Assert.Equal(at, (await Messages.FindAsync(toAdmin))!.DeliveredAt);
        Assert.Null((await Messages.FindAsync(toClient))!.DeliveredAt);
        var page = await Messages.GetPageAsync("admin1", "client1", null, 10);
        Assert.Equal([(toClient, (DateTimeOffset?)null, (string?)null), (toAdmin, at, "d-1")], page.Select(m => (m.Id, m.DeliveredAt, m.ClientMsgId)));
        Assert.Equal(at, (await Messages.GetAfterAsync("admin1", null, 0, 10)).Single(m => m.Id == toAdmin2).DeliveredAt);
        Assert.Equal([toClient], await Messages.MarkDeliveredAsync([toClient], "client1", at));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Messages.MarkDeliveredAsync(new long[1001], "admin1", at));
    }

    [Fact]
    public async Task MarkDelivered_RacingCallsForTheSameIds_EachIdReportedOnce()
    {
        var ids = new List<long>();
        for (var i = 0; i < 20; i++) ids.Add(await StoreAsync(Draft("admin2", "client2")));
        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => Messages.MarkDeliveredAsync(ids, "admin2", DateTimeOffset.UtcNow)))).WaitAsync(s_timeout);
        Assert.Equal(ids, results.SelectMany(r => r).Order());
    }
}

[Trait("Category", "Integration")]
public sealed class SqliteMessageDeliveryTests() : MessageDeliveryTests(StorageProvider.Sqlite);

[Trait("Category", "Integration")]
public sealed class MySqlMessageDeliveryTests() : MessageDeliveryTests(StorageProvider.MySql);
