using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using WsBroker.Broker.Hosting;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Hosting;

/// <summary>The middleware's wiring; its effect over a real HTTP/1.1 upgrade is StompConnectionTests'
/// ClientThatPingsAndNeverReads_IsDropped_AfterSlowConsumerMs on the AspNetCore transport.</summary>
public sealed class TimedUpgradeFeatureTests
{
    private sealed class Upgrade : IHttpUpgradeFeature
    {
        public bool IsUpgradableRequest => true;

        public Task<Stream> UpgradeAsync() => Task.FromResult<Stream>(new MemoryStream());
    }

    private sealed class ExtendedConnect : IHttpExtendedConnectFeature
    {
        public bool IsExtendedConnect => true;

        public string? Protocol => "websocket";

        public ValueTask<Stream> AcceptAsync() => ValueTask.FromResult<Stream>(new MemoryStream());
    }

    private static DefaultHttpContext Request(string path, IHttpUpgradeFeature? upgrade = null, IHttpExtendedConnectFeature? connect = null)
    {
        var context = new DefaultHttpContext();
        context.Request.Path = path;
        if (upgrade is not null) context.Features.Set(upgrade);
        if (connect is not null) context.Features.Set(connect);
        return context;
    }

    [Fact]
    public async Task An_HTTP1_upgrade_to_a_WebSocket_path_is_timed()
    {
        var context = Request("/ws", upgrade: new Upgrade());
        Stream? accepted = null;
        await TimedUpgradeFeature.Install(context, async c => accepted = await c.Features.Get<IHttpUpgradeFeature>()!.UpgradeAsync());
        Assert.IsType<TimedWriteStream>(accepted);
        Assert.Same(accepted, TimedUpgradeFeature.StreamOf(context));
    }

    [Fact]
    public async Task An_HTTP2_extended_CONNECT_to_a_raw_topic_path_is_timed()
    {
        var context = Request("/ws/topic/news", connect: new ExtendedConnect());
        Stream? accepted = null;
        await TimedUpgradeFeature.Install(context, async c => accepted = await c.Features.Get<IHttpExtendedConnectFeature>()!.AcceptAsync());
        Assert.IsType<TimedWriteStream>(accepted);
        Assert.Same(accepted, TimedUpgradeFeature.StreamOf(context));
    }

    [Fact]
    public async Task Other_paths_and_requests_are_left_alone()
    {
        var upgrade = new Upgrade();
        var other = Request("/api/contacts", upgrade: upgrade);
        await TimedUpgradeFeature.Install(other, _ => Task.CompletedTask);
        Assert.Same(upgrade, other.Features.Get<IHttpUpgradeFeature>());
        var plain = Request("/ws");
        await TimedUpgradeFeature.Install(plain, _ => Task.CompletedTask);
        Assert.Null(plain.Features.Get<IHttpUpgradeFeature>());
        Assert.Null(TimedUpgradeFeature.StreamOf(plain));
    }
}
