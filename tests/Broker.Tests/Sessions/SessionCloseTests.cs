using System.Runtime.CompilerServices;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Sessions;

public sealed class SessionCloseTests
{
    [Fact]
    public void TryClaim_OnlyTheFirstWins_AndTheReadLoopStopsOnlyWhenAsked()
    {
        var close = new SessionClose();
        Assert.True(close.TryClaim());
        Assert.False(close.IsRequested);                               // claimed: its last frames are not queued yet
        Assert.False(close.TryClaim());
        close.Request();
        Assert.True(close.IsRequested);
    }

    [Fact]
    public void Claim_ClaimsAndRequests_SoThatALaterCloseDoesNothing()
    {
        var close = new SessionClose();
        close.Claim();
        Assert.True(close.IsRequested);
        Assert.False(close.TryClaim());
    }

    [Fact]
    public void SetReason_TheFirstStays_IncludingTheFirstMemberOfTheEnum()
    {
        var close = new SessionClose();
        Assert.Null(close.Reason);
        close.SetReason(DisconnectReason.ClientClosed);            // 0 in the enum
        close.SetReason(DisconnectReason.SlowConsumer);
        Assert.Equal(DisconnectReason.ClientClosed, close.Reason);
    }

    /// <summary>Holds its close the way a session does, and is the timer's state as the session is: that is what keeps
    /// the timer alive until it fires (a timer nothing reaches is collected and never fires).</summary>
    private sealed class Holder(StrongBox<int> fired, TaskCompletionSource firedOnce)
    {
        public SessionClose Close;
        public readonly StrongBox<int> Fired = fired;
        public readonly TaskCompletionSource FiredOnce = firedOnce;
    }

    [Fact]
    public async Task ArmAbortTimer_FiresOnce_HoweverOftenArmed_AndOutlivesACollection()
    {
        var fired = new StrongBox<int>();
        var firedOnce = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var holder = new Holder(fired, firedOnce);
        for (var i = 0; i < 3; i++)
        {
            holder.Close.ArmAbortTimer(static state =>
            {
                var h = (Holder)state!;
                Interlocked.Increment(ref h.Fired.Value);
                h.FiredOnce.TrySetResult();
            }, holder, 100);
        }
        holder = null;                                              // only the timer reaches it now, as with a session
        await Task.Delay(10);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        await firedOnce.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(300);                                      // room for a second firing, if one were armed
        Assert.Equal(1, Volatile.Read(ref fired.Value));
    }

    [Fact]
    public async Task ArmAbortTimer_AfterTheEnd_NeverFires_AndTheEndDisarmsAnArmedOne()
    {
        var armed = new SessionClose();
        var late = new SessionClose();
        var fired = 0;
        armed.ArmAbortTimer(_ => Interlocked.Increment(ref fired), null, 100);
        armed.Ended();
        late.Ended();
        late.ArmAbortTimer(_ => Interlocked.Increment(ref fired), null, 20);   // a discard after the session ended
        await Task.Delay(400);
        Assert.Equal(0, Volatile.Read(ref fired));
    }
}
