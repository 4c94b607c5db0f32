using System.Diagnostics;
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
    public Task HandleStompAsync(HttpContext context) => RunAsync(context, OpenStompAsync);

    /// <summary>GET /ws/topic/{**path}: a raw topic URL with JSON deliveries.</summary>
    public Task HandleRawAsync(HttpContext context, string path) => RunAsync(context, c => OpenRawAsync(c, path));

    // Holds a place for the WebSocket (or refuses it) while the upgrade is judged and answered, as the pipeline endpoint
    // does: given back when no session is made (before a refusal goes out, so that a client retrying at once finds it
    // free), else once the session runs and is counted in its stead.
    private async Task RunAsync(HttpContext context, Func<HttpContext, Task<(BrokerSession? Session, UpgradeRefusal? Refused)>> open)
    {
        if (!await CanAcceptAsync(context)) return;
        (BrokerSession? Session, UpgradeRefusal? Refused) opened = default;
        try
        {
            opened = await open(context);
        }
        finally
        {
            if (opened.Session is null) admission.Release();
        }
        if (opened.Session is not { } session)
        {
            await Problem(context, opened.Refused ?? throw new UnreachableException("neither a session nor a refusal"));
            return;
        }
        var run = admission.RunOnItsPlace(session);
        using var transport = (WebSocketTransport)session.Transport;
        await run;
    }

    private async Task<(BrokerSession?, UpgradeRefusal?)> OpenStompAsync(HttpContext context)
    {
        if (WebSocketAdmission.ChooseSubProtocol(context.WebSockets.WebSocketRequestedProtocols, out var chosen) is { } refused) return (null, refused);
        return await OpenAsync(context, new WebSocketAcceptContext { SubProtocol = chosen }, transport =>
            new StompSession(transport, services, services.Sessions.NextSessionId(), context.Request.Query["access_token"].FirstOrDefault()));
    }

    private async Task<(BrokerSession?, UpgradeRefusal?)> OpenRawAsync(HttpContext context, string path)
    {
        var token = context.Request.Query["access_token"].FirstOrDefault()
            ?? WebSocketAdmission.BearerOf(context.Request.Headers.Authorization.FirstOrDefault());
        var (admitted, refused) = await admission.AdmitRawAsync(path, context.Request.Query["since"].FirstOrDefault(), token);
        if (admitted is null) return (null, refused);
        var (interval, timeout) = admission.RawKeepAlive;
        return await OpenAsync(context, new WebSocketAcceptContext { KeepAliveInterval = interval, KeepAliveTimeout = timeout }, transport =>
            new RawTopicSession(transport, services, services.Sessions.NextSessionId(), admitted.Destination, admitted.Principal, admitted.Since));
    }

    // Accepts the upgrade and makes the session over it; admission's 503 when Kestrel's limit on upgraded connections is
    // reached (the share plus ConnectionLimits.UpgradeSlack: a burst racing past admission). Kestrel refuses before any
    // byte of the 101, so the client gets the 503, counted, instead of a 500 and an error logged per connection.
    private async Task<(BrokerSession?, UpgradeRefusal?)> OpenAsync(HttpContext context, WebSocketAcceptContext accept,
        Func<WebSocketTransport, BrokerSession> session)
    {
        WebSocket socket;
        try
        {
            socket = await context.WebSockets.AcceptWebSocketAsync(accept);
        }
        catch (InvalidOperationException) when (!context.Response.HasStarted)
        {
            return (null, admission.Full());
        }
        var transport = new WebSocketTransport(socket, TimedUpgradeFeature.StreamOf(context), services.Options.SlowConsumerMs);
        try
        {
            return (session(transport), null);
        }
        catch
        {
            transport.Dispose();                                        // and the socket with it
            throw;
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
