using System.Text;
using Microsoft.Extensions.Logging.Abstractions;

namespace WsBroker.Persistence.Tests;

/// <summary>The message store against a MySQL address where nothing listens: every commit fails as an outage, so an append
/// stays pending until the write timeout.</summary>
public sealed class MessageStoreTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);
    private MessageStore _store = null!;

    public Task InitializeAsync()
    {
        _store = Unreachable(open: true, new PersistenceOptions());
        return Task.CompletedTask;
    }

    private static MessageStore Unreachable(bool open, PersistenceOptions options, int writeTimeoutMs = 1500)
    {
        options.Provider = StorageProvider.MySql;
        options.ConnectionString = "Server=127.0.0.1;Port=1;User ID=nobody;Password=nothing;Database=none";
        options.WriteTimeoutMs = writeTimeoutMs;
        var gate = new StoreGate();
        if (open) gate.Open();                                          // no migrations: the server is not there
        return new MessageStore(SqlDialect.Create(options), options, gate, NullLogger.Instance);
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    private static ChatMessageDraft Draft() => new("admin1", "client1", "client1", "admin1", Encoding.UTF8.GetBytes("hello"), DateTimeOffset.UtcNow);

    [Fact]
    public async Task Append_DatabaseUnreachable_FailsAsUnavailable_WithAFixedTextWithoutDriverDetail()
    {
        var append = _store.Append(Draft(), () => 1);
        Assert.Equal(1, append.Id);
        var ex = await Assert.ThrowsAsync<PersistenceUnavailableException>(() => append.Committed.WaitAsync(s_timeout));
        Assert.Equal("storage unavailable: not committed within 1500 ms", ex.Message);
        Assert.DoesNotContain("connect", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Parameter", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, _store.QueueDepth);
    }

    [Fact]
    public async Task Append_IdStillPending_ASecondAppendWithItIsRejectedAsDuplicate_TheFirstIsUnharmed()
    {
        var first = _store.Append(Draft(), () => 7);
        var twice = Assert.Throws<MessageRejectedException>(() => _store.Append(Draft(), () => 7));
        Assert.Equal((MessageRejection.DuplicateId, "message id already in use"), (twice.Reason, twice.Message));
        Assert.Equal(1, _store.QueueDepth);
        Assert.False(first.Committed.IsCompleted);
        await Assert.ThrowsAsync<PersistenceUnavailableException>(() => first.Committed.WaitAsync(s_timeout));
    }

    [Fact]
    public async Task Append_StoreShuttingDown_FailsTheCommitAtOnce_IdStillGiven()
    {
        await _store.DisposeAsync();
        var late = _store.Append(Draft(), () => 9);
        Assert.Equal(9, late.Id);
        var ex = await Assert.ThrowsAsync<PersistenceUnavailableException>(() => late.Committed);
        Assert.Equal("storage unavailable: store is shutting down", ex.Message);
        Assert.Equal(0, _store.QueueDepth);
    }

    [Fact]
    public async Task Append_QueueFull_FailsTheCommitAtOnce_IdStillGiven()
    {
        // A write timeout far longer than the steps below: on a loaded machine 1.5 s could pass before the second is
        // looked at, and it would have timed out (it failed so in CI once).
        await using var store = Unreachable(open: true, new PersistenceOptions { QueueCapacity = 1, BatchSize = 1 }, writeTimeoutMs: 10_000);
        var first = store.Append(Draft(), () => 1);
        // Once the writer holds the first one (retrying), one more fits in the queue. Until then an append finds the queue
        // full: on a loaded machine the writer may take a while to pick the first up, so try again until one waits.
        PendingAppend second;
        var next = 2L;
        for (var attempt = 0; ; attempt++)
        {
            await Task.Delay(100);
            second = store.Append(Draft(), () => next++);
            if (!second.Committed.IsCompleted) break;                   // waits in the queue
            Assert.True(attempt < 100, "the writer never took the first append");
        }
        var third = store.Append(Draft(), () => 1000);
        Assert.Equal(1000, third.Id);
        var ex = await Assert.ThrowsAsync<PersistenceUnavailableException>(() => third.Committed);
        Assert.Equal("storage unavailable: write queue full", ex.Message);
        Assert.False(second.Committed.IsCompleted);
        await Assert.ThrowsAsync<PersistenceUnavailableException>(() => Task.WhenAll(first.Committed, second.Committed).WaitAsync(s_timeout));
    }

    [Fact]
    public async Task Settled_QueueFullAndTimeout_EachSettledOnceInIdOrder_BeforeItsCommitFails()
    {
        // A write timeout longer than the steps below take on a loaded machine (1.5 s once was not: the first had timed out
        // before the last was appended).
        await using var store = Unreachable(open: true, new PersistenceOptions { QueueCapacity = 1, BatchSize = 1 }, writeTimeoutMs: 5_000);
        var settled = new System.Collections.Concurrent.ConcurrentQueue<(long Id, string? Error, bool CommitDone)>();
        var appends = new Dictionary<long, PendingAppend>();
        void Record(long id, Exception? error)
        {
            lock (appends) settled.Enqueue((id, error?.Message, appends.TryGetValue(id, out var a) && a.Committed.IsCompleted));
        }
        lock (appends) appends[1] = store.Append(Draft(), () => 1, Record);
        // Once the writer holds the first one (retrying), one more fits in the queue: probes without a callback (they fail
        // at once while the queue is full) until one waits there.
        var next = 2L;
        for (var attempt = 0; store.Append(Draft(), () => next++).Committed.IsCompleted; attempt++)
        {
            Assert.True(attempt < 40, "the writer never took the first append");
            await Task.Delay(50);
        }
        lock (appends) appends[1000] = store.Append(Draft(), () => 1000, Record);   // queue full
        Assert.False(appends[1000].Committed.IsCompleted);              // with a callback it waits for the older ids
        var full = await Assert.ThrowsAsync<PersistenceUnavailableException>(() => appends[1000].Committed.WaitAsync(s_timeout));
        Assert.Equal("storage unavailable: write queue full", full.Message);
        Assert.True(appends[1].Committed.IsFaulted);
        Assert.Equal([
            (1L, (string?)"storage unavailable: not committed within 5000 ms", false),
            (1000L, "storage unavailable: write queue full", false)], settled);
        Assert.Equal(0, store.QueueDepth);
    }

    [Fact]
    public async Task Settled_StoreShuttingDown_QueuedAndLateAppendsAreSettled()
    {
        var settled = new System.Collections.Concurrent.ConcurrentQueue<(long Id, Exception? Error)>();
        var queued = _store.Append(Draft(), () => 4, (id, e) => settled.Enqueue((id, e)));
        await _store.DisposeAsync();
        var late = _store.Append(Draft(), () => 5, (id, e) => settled.Enqueue((id, e)));
        await Assert.ThrowsAsync<PersistenceUnavailableException>(() => queued.Committed.WaitAsync(s_timeout));
        await Assert.ThrowsAsync<PersistenceUnavailableException>(() => late.Committed.WaitAsync(s_timeout));
        Assert.Equal([4L, 5], settled.Select(s => s.Id));
        Assert.All(settled, s => Assert.IsType<PersistenceUnavailableException>(s.Error));
    }

    [Fact]
    public async Task Append_SameClientMsgIdWhileQueued_SameAppend_NoSecondId_ButAnotherSendersIsItsOwn()
    {
        var allocations = 0;
        var first = _store.Append(Draft() with { ClientMsgId = "abc" }, () => ++allocations);
        var again = _store.Append(Draft() with { ClientMsgId = "abc" }, () => ++allocations);
        var other = _store.Append(Draft() with { SenderId = "admin1", ReceiverId = "client1", ClientMsgId = "abc" }, () => ++allocations);
        Assert.Equal((1L, false, 1L, true, 2L, false), (first.Id, first.Duplicate, again.Id, again.Duplicate, other.Id, other.Duplicate));
        Assert.Same(first.Committed, again.Committed);
        Assert.Equal(2, allocations);
        await Assert.ThrowsAsync<PersistenceUnavailableException>(() => first.Committed.WaitAsync(s_timeout));
        var afterFailure = _store.Append(Draft() with { ClientMsgId = "abc" }, () => 10);   // the failed one is no longer in flight
        Assert.Equal((10L, false), (afterFailure.Id, afterFailure.Duplicate));
        await Assert.ThrowsAsync<PersistenceUnavailableException>(() => Task.WhenAll(other.Committed, afterFailure.Committed).WaitAsync(s_timeout));
    }

    [Fact]
    public async Task StoreNotOpened_EveryCallThrowsInvalidOperation_AppendBeforeTakingAnId()
    {
        await using var closed = Unreachable(open: false, new PersistenceOptions());
        var allocated = false;
        var ex = Assert.Throws<InvalidOperationException>(() => closed.Append(Draft(), () => { allocated = true; return 1; }));
        Assert.Contains("not open yet", ex.Message, StringComparison.Ordinal);
        Assert.False(allocated);
        await Assert.ThrowsAsync<InvalidOperationException>(() => closed.GetPageAsync("admin1", "client1", null, 10));
        await Assert.ThrowsAsync<InvalidOperationException>(() => closed.FindAsync(1));
        await Assert.ThrowsAsync<InvalidOperationException>(() => closed.MarkSeenAsync(1, "admin1", DateTimeOffset.UtcNow));
        await Assert.ThrowsAsync<InvalidOperationException>(() => closed.GetConversationsAsync("admin1"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => closed.GetAfterAsync("admin1", null, 0, 10));
        await Assert.ThrowsAsync<InvalidOperationException>(() => closed.FindByClientMsgIdAsync("client1", "abc"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => closed.MarkDeliveredAsync([1], "admin1", DateTimeOffset.UtcNow));
    }
}
