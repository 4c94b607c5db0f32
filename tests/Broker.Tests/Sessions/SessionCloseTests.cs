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

    [Fact]
    public async Task ArmAbortTimer_FiresOnce_HoweverOftenArmed()
    {
        var close = new SessionClose();
        var fired = 0;
        for (var i = 0; i < 3; i++) close.ArmAbortTimer(_ => Interlocked.Increment(ref fired), null, 20);
        await Task.Delay(300);
        Assert.Equal(1, Volatile.Read(ref fired));
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
