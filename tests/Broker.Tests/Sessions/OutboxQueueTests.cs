using WsBroker.Broker.Sessions;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

public sealed class OutboxQueueTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private static Outbound Item(int n) => Outbound.Frame(StompCommand.Receipt, [], n, pooled: false, binary: false);

    [Fact]
    public void TryWrite_PastTheRingsFirstLength_ReadsInOrderUpToTheCapacity()
    {
        var queue = new OutboxQueue(capacity: 100);
        for (var round = 0; round < 3; round++)                       // the ring wraps, grows, and is given back each round
        {
            for (var i = 0; i < 100; i++) Assert.True(queue.TryWrite(Item(i)));
            Assert.False(queue.TryWrite(Item(100)));                  // full: the hard cap
            for (var i = 0; i < 60; i++)
            {
                Assert.True(queue.TryRead(out var item));
                Assert.Equal(i, item.Length);
            }
            for (var i = 100; i < 160; i++) Assert.True(queue.TryWrite(Item(i)));
            for (var i = 60; i < 160; i++)
            {
                Assert.True(queue.TryRead(out var item));
                Assert.Equal(i, item.Length);
            }
            Assert.False(queue.TryRead(out _));
            Assert.True(queue.WaitToReadAsync() is { IsCompleted: false });   // the reader goes idle
            Assert.False(queue.HoldsArray, "an idle queue holds no array");
            Assert.True(queue.TryWrite(Item(-1)));                    // wakes it
            Assert.False(queue.HoldsArray, "a lone item takes no ring");
            Assert.True(queue.TryRead(out var lone));
            Assert.Equal(-1, lone.Length);
            Assert.True(queue.TryWrite(Item(-2)));                    // two: the lone one moves into a ring, first
            Assert.True(queue.TryWrite(Item(-3)));
            Assert.True(queue.HoldsArray);
            Assert.True(queue.TryRead(out var first));
            Assert.True(queue.TryRead(out var second));
            Assert.Equal((-2, -3), (first.Length, second.Length));
            Assert.True(queue.WaitToReadAsync() is { IsCompleted: false });
        }
    }

    [Fact]
    public async Task TryWriteHeartBeat_IsAFlagReadAfterTheItems_AndTakesNoRing()
    {
        var queue = new OutboxQueue(capacity: 4);
        var wait = queue.WaitToReadAsync();
        Assert.True(queue.IsEmpty);
        Assert.True(queue.TryWriteHeartBeat());
        Assert.True(queue.TryWriteHeartBeat());                       // two asks before the reader comes are one
        Assert.True(await wait.WaitAsync(s_timeout));                 // it wakes the reader
        Assert.False(queue.HoldsArray, "a heart-beat takes no ring");
        Assert.False(queue.IsEmpty);
        for (var i = 0; i < 4; i++) Assert.True(queue.TryWrite(Item(i)));   // the items do not count it against the capacity
        for (var i = 0; i < 4; i++)
        {
            Assert.True(queue.TryRead(out var item));
            Assert.Equal((OutboundKind.Frame, i), (item.Kind, item.Length));
        }
        Assert.True(queue.TryRead(out var beat));
        Assert.Equal(OutboundKind.HeartBeat, beat.Kind);
        Assert.False(queue.TryRead(out _));
        Assert.True(queue.IsEmpty);

        queue.Complete();
        Assert.False(queue.TryWriteHeartBeat());                      // none after the end
        Assert.False(await queue.WaitToReadAsync());
    }

    [Fact]
    public async Task WaitToReadAsync_WokenByAWriteThenByComplete_AndDrainsWhatWasQueuedBeforeTheEnd()
    {
        var queue = new OutboxQueue(capacity: 8);
        var wait = queue.WaitToReadAsync();
        Assert.False(wait.IsCompleted);
        Assert.True(queue.TryWrite(Item(1)));
        Assert.True(await wait.WaitAsync(s_timeout));
        Assert.True(queue.TryRead(out _));

        wait = queue.WaitToReadAsync();
        queue.Complete();
        Assert.False(await wait.WaitAsync(s_timeout));                // completed and empty

        var ended = new OutboxQueue(capacity: 8);
        Assert.True(ended.TryWrite(Item(1)));
        ended.Complete();
        Assert.False(ended.TryWrite(Item(2)));                         // no writes after the end
        Assert.True(await ended.WaitToReadAsync());                    // but what was queued is read
        Assert.True(ended.TryRead(out var last));
        Assert.Equal(1, last.Length);
        Assert.False(await ended.WaitToReadAsync());
        Assert.False(ended.HoldsArray);
    }

    [Fact]
    public async Task TryWrite_FromManyThreads_TheOneReaderGetsEveryItemOnce()
    {
        const int Writers = 4, PerWriter = 5_000;
        var queue = new OutboxQueue(capacity: Writers * PerWriter);
        var reader = Task.Run(async () =>
        {
            var seen = new HashSet<int>();
            while (seen.Count < Writers * PerWriter && await queue.WaitToReadAsync())
            {
                while (queue.TryRead(out var item)) Assert.True(seen.Add(item.Length));
            }
            return seen.Count;
        });
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < PerWriter; i++) Assert.True(queue.TryWrite(Item(w * PerWriter + i)));
        })));
        Assert.Equal(Writers * PerWriter, await reader.WaitAsync(s_timeout));
    }
}

/// <summary>The reader's side as a task, over <see cref="OutboxQueue.WaitToRead"/>: true once something waits, false once
/// completed and empty; while it must wait, a task that its resume completes (then it asks again, as the writer does).</summary>
internal static class OutboxQueueReading
{
    public static Task<bool> WaitToReadAsync(this OutboxQueue queue)
    {
        var resumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return queue.WaitToRead(static state => ((TaskCompletionSource)state!).SetResult(), resumed) switch
        {
            OutboxRead.Ready => Task.FromResult(true),
            OutboxRead.Completed => Task.FromResult(false),
            _ => AgainAsync(queue, resumed.Task),
        };
    }

    private static async Task<bool> AgainAsync(OutboxQueue queue, Task resumed)
    {
        await resumed;
        return await queue.WaitToReadAsync();
    }
}
