using Microsoft.AspNetCore.Http.Features;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Hosting;

/// <summary>Kestrel's upgrade (HTTP/1.1) or extended CONNECT (a WebSocket over HTTP/2, RFC 8441), handing the WebSocket
/// middleware a <see cref="TimedWriteStream"/> over the accepted stream, so that <see cref="WebSocketTransport"/> can bound
/// the writes the socket makes on its own (pongs, close replies). Set by <see cref="Install"/>, ahead of the WebSocket
/// middleware, which takes the features when it runs.</summary>
internal sealed class TimedUpgradeFeature(IHttpUpgradeFeature? upgrade, IHttpExtendedConnectFeature? connect)
    : IHttpUpgradeFeature, IHttpExtendedConnectFeature
{
    /// <summary>The accepted stream, once accepted.</summary>
    public TimedWriteStream? Stream { get; private set; }

    public bool IsUpgradableRequest => upgrade?.IsUpgradableRequest ?? false;

    public async Task<Stream> UpgradeAsync() => Stream = new TimedWriteStream(await upgrade!.UpgradeAsync());

    public bool IsExtendedConnect => connect?.IsExtendedConnect ?? false;

    public string? Protocol => connect?.Protocol;

    public async ValueTask<Stream> AcceptAsync() => Stream = new TimedWriteStream(await connect!.AcceptAsync());

    /// <summary>Middleware: an upgradable request or extended CONNECT to the broker's WebSocket paths gets its stream timed.</summary>
    public static Task Install(HttpContext context, RequestDelegate next)
    {
        if (context.Request.Path.StartsWithSegments("/ws"))
        {
            var upgrade = context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } u ? u : null;
            var connect = context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true } c ? c : null;
            var timed = upgrade is null && connect is null ? null : new TimedUpgradeFeature(upgrade, connect);
            if (upgrade is not null) context.Features.Set<IHttpUpgradeFeature>(timed);
            if (connect is not null) context.Features.Set<IHttpExtendedConnectFeature>(timed);
        }
        return next(context);
    }

    /// <summary>The timed stream of a request this middleware saw and that was accepted; null otherwise.</summary>
    public static TimedWriteStream? StreamOf(HttpContext context) =>
        (context.Features.Get<IHttpUpgradeFeature>() as TimedUpgradeFeature
            ?? context.Features.Get<IHttpExtendedConnectFeature>() as TimedUpgradeFeature)?.Stream;
}
