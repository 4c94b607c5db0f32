using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Transport;

public sealed class TimedWriteStreamTests
{
    /// <summary>Writes complete when the test says so; reads are not used.</summary>
    private sealed class HeldWrites : MemoryStream
    {
        public TaskCompletionSource Release { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public bool Hold { get; set; }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            Hold ? new ValueTask(Release.Task) : ValueTask.CompletedTask;
    }

    [Fact]
    public async Task APendingWrite_IsTimedFromItsStart_AndForgottenOnceItCompletes()
    {
        var inner = new HeldWrites();
        var stream = new TimedWriteStream(inner);
        await stream.WriteAsync(new byte[10]);                      // completes at once: nothing pending
        Assert.Equal(0, stream.WritingSinceMs);

        inner.Hold = true;
        var before = Environment.TickCount64;
        var write = stream.WriteAsync(new byte[10]);
        Assert.False(write.IsCompleted);
        Assert.InRange(stream.WritingSinceMs, before, Environment.TickCount64);
        inner.Release.SetResult();
        await write;
        Assert.Equal(0, stream.WritingSinceMs);
    }

    [Fact]
    public async Task AFailedWrite_IsForgottenToo()
    {
        var inner = new HeldWrites { Hold = true };
        var stream = new TimedWriteStream(inner);
        var write = stream.WriteAsync(new byte[10]).AsTask();
        Assert.NotEqual(0, stream.WritingSinceMs);
        inner.Release.SetException(new IOException("reset"));
        await Assert.ThrowsAsync<IOException>(() => write);
        Assert.Equal(0, stream.WritingSinceMs);
    }
}
