using WsBroker.Broker.Sessions;

namespace WsBroker.Broker.Tests.Sessions;

public sealed class SessionClockTests
{
    [Fact]
    public void TokenExpiry_ExpiresOnceAtTheInstant_ARefreshInTimeMovesIt_ALateOneCannotReviveIt()
    {
        var clock = new SessionClock(1000);
        Assert.Equal(long.MaxValue, clock.ExpiresAtMs);                // no token yet: never
        Assert.True(clock.TryExtend(1000, 5000));
        Assert.False(clock.TryExpire(4999));
        Assert.True(clock.TryExtend(4999, 9000));                      // a refresh in time
        Assert.False(clock.TryExpire(8999));
        Assert.True(clock.TryExpire(9000));                            // at the instant
        Assert.False(clock.TryExpire(9001));                           // only the first caller stops the session
        Assert.True(clock.IsExpired);
        Assert.False(clock.TryExtend(9001, 20_000));                   // too late
        Assert.True(clock.IsExpired);
        Assert.True(clock.ExpiresAtMs < 0);                            // below every reading: every check sees it expired
    }

    [Fact]
    public void TakeHeartBeat_DueWhenTheNextTickWouldBeLate_ThenCountedAsSent()
    {
        var clock = new SessionClock(0) { HeartBeatSendMs = 10_000 };
        Assert.False(clock.TakeHeartBeat(8_999, earlyMs: 1_000));      // the next tick, at 9,999, is still in time
        Assert.True(clock.TakeHeartBeat(9_000, earlyMs: 1_000));       // the next one, at 10,000, would be late
        Assert.False(clock.TakeHeartBeat(9_500, earlyMs: 1_000));      // taken: counted as sent at 9,000
        Assert.False(clock.TakeHeartBeat(17_999, earlyMs: 1_000));
        Assert.True(clock.TakeHeartBeat(18_000, earlyMs: 1_000));
        Assert.False(clock.TakeHeartBeat(27_999));                     // with no tick to allow for: the interval itself
        Assert.True(clock.TakeHeartBeat(28_000));
    }

    [Fact]
    public void TakeHeartBeat_EarlyByAQuarterOfTheIntervalAtMost()
    {
        var clock = new SessionClock(0) { HeartBeatSendMs = 20 };      // a 10 ms tick (the scanner's floor) is half of it
        Assert.False(clock.TakeHeartBeat(14, earlyMs: 10));
        Assert.True(clock.TakeHeartBeat(15, earlyMs: 10));
    }

    [Fact]
    public void TakeHeartBeat_Off_NeverDue()
    {
        var clock = new SessionClock(0);
        Assert.False(clock.TakeHeartBeat(1_000_000, earlyMs: 1_000));
    }

    [Fact]
    public void ExpiryOf_IsExpPlusSkewOnTheSessionClock_AndNeverWithoutExp()
    {
        Assert.Equal(long.MaxValue, SessionClock.ExpiryOf(DateTimeOffset.MaxValue, TimeSpan.FromSeconds(30)));
        var now = Environment.TickCount64;
        var expiry = SessionClock.ExpiryOf(DateTimeOffset.UtcNow.AddSeconds(10), TimeSpan.FromSeconds(5));
        Assert.InRange(expiry - now, 14_000, 15_500);
    }
}
