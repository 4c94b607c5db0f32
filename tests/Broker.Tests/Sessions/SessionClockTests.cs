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
    public void ExpiryOf_IsExpPlusSkewOnTheSessionClock_AndNeverWithoutExp()
    {
        Assert.Equal(long.MaxValue, SessionClock.ExpiryOf(DateTimeOffset.MaxValue, TimeSpan.FromSeconds(30)));
        var now = Environment.TickCount64;
        var expiry = SessionClock.ExpiryOf(DateTimeOffset.UtcNow.AddSeconds(10), TimeSpan.FromSeconds(5));
        Assert.InRange(expiry - now, 14_000, 15_500);
    }
}
