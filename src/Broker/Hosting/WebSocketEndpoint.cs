using System.Net.WebSockets;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Hosting;

/// <summary>Called by the host for <c>/ws</c> and <c>/ws/topic/…</c> on ASP.NET Core's HTTP pipeline
/// (<c>Broker:Transport=AspNetCore</c>, and any upgrade the pipeline transport leaves to it): negotiates the WebSocket
/// upgrade as <see cref="WebSocketAdmission"/> decides, wraps the socket in a <see cref="WebSocketTransport"/> and runs a
/// session over it.</summary>
public sealed class WebSocketEndpoint(BrokerServices services, WebSocketAdmission admission)
{
    /// <summary>GET /ws: a STOMP session.</summary>
    public async Task HandleStompAsync(HttpContext context)
    {
        if (!await CanAcceptAsync(context)) return;                 // a place is held for it
        var held = true;
        try
        {
            if (WebSocketAdmission.ChooseSubProtocol(context.WebSockets.WebSocketRequestedProtocols, out var chosen) is { } refused)
            {
                held = false;
                await RefuseHeldAsync(context, refused);
                return;
            }
            using var socket = await AcceptAsync(context, new WebSocketAcceptContext { SubProtocol = chosen });
            if (socket is null)
            {
                held = false;
                await RefuseHeldAsync(context, admission.Full());
                return;
            }
            using var transport = new WebSocketTransport(socket, TimedUpgradeFeature.StreamOf(context), services.Options.SlowConsumerMs);
            var session = new StompSession(transport, services, services.Sessions.NextSessionId(),
                context.Request.Query["access_token"].FirstOrDefault());
            held = false;
            await RunOnItsPlaceAsync(session);
        }
        finally
        {
            if (held) admission.Release();
        }
    }

    /// <summary>GET /ws/topic/{**path}: a raw topic URL with JSON deliveries.</summary>
    public async Task HandleRawAsync(HttpContext context, string path)
    {
        if (!await CanAcceptAsync(context)) return;                 // a place is held for it
        var held = true;
        try
        {
            var token = context.Request.Query["access_token"].FirstOrDefault()
                ?? WebSocketAdmission.BearerOf(context.Request.Headers.Authorization.FirstOrDefault());
            var (admitted, refused) = await admission.AdmitRawAsync(path, context.Request.Query["since"].FirstOrDefault(), token);
            if (admitted is null)
            {
                held = false;
                await RefuseHeldAsync(context, refused!.Value);
                return;
            }
            var (interval, timeout) = admission.RawKeepAlive;
            using var socket = await AcceptAsync(context, new WebSocketAcceptContext { KeepAliveInterval = interval, KeepAliveTimeout = timeout });
            if (socket is null)
            {
                held = false;
                await RefuseHeldAsync(context, admission.Full());
                return;
            }
            using var transport = new WebSocketTransport(socket, TimedUpgradeFeature.StreamOf(context), services.Options.SlowConsumerMs);
            var session = new RawTopicSession(transport, services, services.Sessions.NextSessionId(), admitted.Destination, admitted.Principal, admitted.Since);
            held = false;
            await RunOnItsPlaceAsync(session);
        }
        finally
        {
            if (held) admission.Release();
        }
    }

    // Accepts the upgrade; null when Kestrel's limit on upgraded connections is reached (the share plus
    // ConnectionLimits.UpgradeSlack: a burst racing past admission). Kestrel refuses before any byte of the 101, so the
    // caller answers admission's 503, counted, instead of a 500 and an error logged per connection.
    private static async Task<WebSocket?> AcceptAsync(HttpContext context, WebSocketAcceptContext accept)
    {
        try
        {
            return await context.WebSockets.AcceptWebSocketAsync(accept);
        }
        catch (InvalidOperationException) when (!context.Response.HasStarted)
        {
            return null;
        }
    }

    // Gives the held place back, then answers the refusal: a client that retries at once finds the place free.
    private Task RefuseHeldAsync(HttpContext context, UpgradeRefusal refusal)
    {
        admission.Release();
        return Problem(context, refusal);
    }

    // The session is registered (counted) before its run's first await: the place held for it is given back then.
    private Task RunOnItsPlaceAsync(BrokerSession session)
    {
        try
        {
            return session.RunAsync();
        }
        finally
        {
            admission.Release();
        }
    }

    private async Task<bool> CanAcceptAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            if (OtherWebSocketVersion(context.Request.Headers))
            {
                // RFC 6455 §4.4: the versions this server speaks go with the refusal.
                context.Response.Headers.SecWebSocketVersion = "13";
                await Problem(context, new UpgradeRefusal(StatusCodes.Status426UpgradeRequired, "unsupported WebSocket version", "this server speaks WebSocket version 13"));
                return false;
            }
            await Problem(context, new UpgradeRefusal(StatusCodes.Status400BadRequest, "WebSocket upgrade required", "connect with a WebSocket client"));
            return false;
        }
        if (admission.TryHold() is not { } refused) return true;
        await Problem(context, refused);
        return false;
    }

    // A WebSocket upgrade but for its version.
    private static bool OtherWebSocketVersion(IHeaderDictionary headers) =>
        headers.Upgrade.Any(u => u is not null && u.Contains("websocket", StringComparison.OrdinalIgnoreCase))
        && headers.SecWebSocketVersion is { Count: > 0 } version && version.ToString() != "13";

    private static Task Problem(HttpContext context, UpgradeRefusal refusal)
    {
        if (refusal.RetryAfter is { } retry) context.Response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Problem(title: refusal.Title, detail: refusal.Detail, statusCode: refusal.Status).ExecuteAsync(context);
    }
}
