using Microsoft.AspNetCore.Http.Features;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Hosting;

/// <summary>Kestrel's upgrade, handing the WebSocket middleware a <see cref="TimedWriteStream"/> over the upgraded
/// connection, so that <see cref="WebSocketTransport"/> can bound the writes the socket makes on its own (pongs, close
/// replies). Set by <see cref="Install"/>, ahead of the WebSocket middleware, which takes the feature when it runs.</summary>
internal sealed class TimedUpgradeFeature(IHttpUpgradeFeature inner) : IHttpUpgradeFeature
{
    /// <summary>The upgraded stream, once upgraded.</summary>
    public TimedWriteStream? Stream { get; private set; }

    public bool IsUpgradableRequest => inner.IsUpgradableRequest;

    public async Task<Stream> UpgradeAsync() => Stream = new TimedWriteStream(await inner.UpgradeAsync());

    /// <summary>Middleware: an upgradable request to the broker's WebSocket paths gets its upgrade timed.</summary>
    public static Task Install(HttpContext context, RequestDelegate next)
    {
        if (context.Request.Path.StartsWithSegments("/ws") && context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } upgrade)
            context.Features.Set<IHttpUpgradeFeature>(new TimedUpgradeFeature(upgrade));
        return next(context);
    }

    /// <summary>The timed stream of a request this middleware saw and that was upgraded; null otherwise.</summary>
    public static TimedWriteStream? StreamOf(HttpContext context) => (context.Features.Get<IHttpUpgradeFeature>() as TimedUpgradeFeature)?.Stream;
}
