using WsBroker.Broker.Sessions;

namespace WsBroker.Broker.Tests.Sessions;

public class ReceiptTrackerTests
{
    [Fact]
    public async Task AllAnswered_NothingTracked_CompletesAtOnce()
    {
        var tracker = new ReceiptTracker(TimeSpan.FromSeconds(5));
        Assert.True(await tracker.AllAnsweredAsync().WaitAsync(TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task AllAnswered_WaitsForEveryAnswerTrackedBefore_NotForLaterOnes()
    {
        var tracker = new ReceiptTracker(TimeSpan.FromSeconds(10));
        var first = new TaskCompletionSource();
        var second = new TaskCompletionSource();
        tracker.Track(first.Task);
        tracker.Track(second.Task);
        var waiting = tracker.AllAnsweredAsync();
        tracker.Track(new TaskCompletionSource().Task);          // after the wait began: not waited for
        first.SetResult();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);
        second.SetResult();
        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(1, tracker.Pending);
    }

    [Fact]
    public async Task AllAnswered_AnAnswerThatNeverComes_GivesUpAfterTheTimeout()
    {
        var tracker = new ReceiptTracker(TimeSpan.FromMilliseconds(100));
        tracker.Track(new TaskCompletionSource().Task);
        Assert.False(await tracker.AllAnsweredAsync().WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task AllAnswered_FailedAnswer_CountsAsGiven()
    {
        var tracker = new ReceiptTracker(TimeSpan.FromSeconds(5));
        var failing = new TaskCompletionSource();
        tracker.Track(failing.Task);
        failing.SetException(new InvalidOperationException("rejected"));
        Assert.True(await tracker.AllAnsweredAsync().WaitAsync(TimeSpan.FromSeconds(1)));
        Assert.Equal(0, tracker.Pending);
    }
}
