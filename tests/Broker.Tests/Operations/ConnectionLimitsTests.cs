using WsBroker.Broker.Hosting;

namespace WsBroker.Broker.Tests.Operations;

/// <summary>How the open-file limit is shared between WebSockets and HTTP connections (ConnectionLimits); the limit itself
/// is tested end to end under `ulimit -n 1000` in tests/js/fd-limit.test.mjs.</summary>
public sealed class ConnectionLimitsTests
{
    [Fact]
    public void The_machine_limit_of_20000_holds_19000_WebSockets()
    {
        var (webSockets, http, enough) = ConnectionLimits.Shares(20_000, open: 300, maxConnections: 0);
        Assert.True(webSockets >= 19_000, $"{webSockets} WebSockets");
        Assert.Equal(400, http);
        Assert.True(enough);
        Assert.True(webSockets + http + ConnectionLimits.UpgradeSlack + 300 < 20_000, "accept always finds a descriptor");
    }

    [Fact]
    public void A_small_limit_keeps_the_reserve_and_gives_HTTP_a_twentieth_of_the_rest_and_at_least_16()
    {
        var (webSockets, http, enough) = ConnectionLimits.Shares(1_000, open: 200, maxConnections: 0);
        Assert.Equal((1_000 - 200 - ConnectionLimits.Reserve) / 20, http);
        Assert.Equal(1_000 - 200 - ConnectionLimits.Reserve - http, webSockets);
        Assert.True(enough);
        Assert.Equal(16, ConnectionLimits.Shares(500, open: 200, maxConnections: 0).Http);
    }

    [Fact]
    public void Broker_MaxConnections_overrides_the_WebSocket_share_and_too_many_is_reported()
    {
        Assert.Equal((100, 400, true), ConnectionLimits.Shares(20_000, open: 300, maxConnections: 100));
        var (webSockets, _, enough) = ConnectionLimits.Shares(1_000, open: 200, maxConnections: 5_000);
        Assert.Equal(5_000, webSockets);
        Assert.False(enough);
    }

    [Fact]
    public void A_limit_too_small_for_anything_still_leaves_one_WebSocket_and_says_so()
    {
        var (webSockets, http, enough) = ConnectionLimits.Shares(100, open: 200, maxConnections: 0);
        Assert.Equal((1, 16), (webSockets, http));
        Assert.False(enough);
    }

    [Fact]
    public void A_limit_of_a_million_still_keeps_what_is_open_and_the_reserve()
    {
        var (webSockets, http, enough) = ConnectionLimits.Shares(1_000_000, open: 300, maxConnections: 0);
        Assert.Equal(1_000_000 - 300 - ConnectionLimits.Reserve, webSockets + http);
        Assert.True(enough);
    }

    [Fact]
    public void A_share_past_a_million_that_fits_the_limit_is_not_reported_as_too_many()
    {
        Assert.True(ConnectionLimits.Shares(20_000_000, open: 300, maxConnections: 2_000_000).Enough);
        Assert.True(ConnectionLimits.Shares(long.MaxValue, open: 300, maxConnections: 10_000_000).Enough);
    }

    [Fact]
    public void An_unknown_or_unlimited_limit_is_bounded_by_the_broker_itself()
    {
        var (webSockets, http, enough) = ConnectionLimits.Shares(-1, open: 0, maxConnections: 0);
        Assert.Equal(400, http);
        Assert.True(webSockets > 100_000);
        Assert.True(enough);
    }
}
