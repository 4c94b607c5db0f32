using WsBroker.Broker.Destinations;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Hosting;

/// <summary>Called by the host for <c>/ws</c> and <c>/ws/topic/…</c>: negotiates the WebSocket upgrade, wraps the socket in
/// a <see cref="WebSocketTransport"/> and runs a session over it.</summary>
public sealed class WebSocketEndpoint(BrokerServices services, IHostApplicationLifetime lifetime, ConnectionLimits limits, ConnectionRefusals refusals)
{
    private static readonly string[] s_subProtocols = ["v12.stomp", "v11.stomp", "v10.stomp"];

    /// <summary>GET /ws: a STOMP session.</summary>
    public async Task HandleStompAsync(HttpContext context)
    {
        if (!await CanAcceptAsync(context)) return;
        // Prefer the newest STOMP the client offers; a client that offers none still gets STOMP (1.2 rules, CONNECT decides).
        var offered = context.WebSockets.WebSocketRequestedProtocols;
        var chosen = s_subProtocols.FirstOrDefault(p => offered.Contains(p, StringComparer.OrdinalIgnoreCase));
        if (offered.Count > 0 && chosen is null)
        {
            await Problem(context, StatusCodes.Status400BadRequest, "unsupported WebSocket subprotocol",
                "offer v12.stomp, v11.stomp or v10.stomp");
            return;
        }
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = chosen });
        var session = new StompSession(new WebSocketTransport(socket), services, services.Sessions.NextSessionId(),
            context.Request.Query["access_token"].FirstOrDefault());
        await session.RunAsync();
    }

    /// <summary>GET /ws/topic/{**path}: a raw topic URL with JSON deliveries.</summary>
    public async Task HandleRawAsync(HttpContext context, string path)
    {
        if (!await CanAcceptAsync(context)) return;
        if (services.Destinations.Get(Destination.TopicPrefix + path, out var invalid) is not { } destination)
        {
            await Problem(context, StatusCodes.Status400BadRequest, "invalid destination", invalid.ToMessage());
            return;
        }
        long? since = null;
        if (context.Request.Query["since"].FirstOrDefault() is { } sinceText)
        {
            if (!long.TryParse(sinceText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value))
            {
                await Problem(context, StatusCodes.Status400BadRequest, "invalid since", "since must be a message id (0 for everything)");
                return;
            }
            if (services.FindReplaySource(destination) is null)
            {
                await Problem(context, StatusCodes.Status400BadRequest, "invalid since", "since is only for stored destinations (chat conversations)");
                return;
            }
            since = value;
        }
        var token = context.Request.Query["access_token"].FirstOrDefault() ?? BearerOf(context);
        var (principal, error) = await services.Jwt.ValidateAsync(token);
        if (principal is null)
        {
            services.Metrics.AuthenticationFailure();
            await Problem(context, StatusCodes.Status401Unauthorized, "authentication failed", error!);
            return;
        }
        if (await services.Policy.CanConnectAsync(principal) is { } refused)
        {
            services.Metrics.AuthenticationFailure();
            await Problem(context, StatusCodes.Status403Forbidden, "forbidden", refused);
            return;
        }
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            KeepAliveInterval = TimeSpan.FromMilliseconds(Math.Max(1000, services.Options.HeartBeatSendMs)),
            // Raw URLs have no STOMP heart-beats: a client that answers no ping within twice the receive interval is
            // gone (half-open socket) and is closed, like a silent STOMP client.
            KeepAliveTimeout = services.Options.HeartBeatReceiveMs == 0 ? Timeout.InfiniteTimeSpan
                : TimeSpan.FromMilliseconds(Math.Max(2000, 2 * services.Options.HeartBeatReceiveMs)),
        });
        var session = new RawTopicSession(new WebSocketTransport(socket), services, services.Sessions.NextSessionId(), destination, principal, since);
        await session.RunAsync();
    }

    private async Task<bool> CanAcceptAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await Problem(context, StatusCodes.Status400BadRequest, "WebSocket upgrade required", "connect with a WebSocket client");
            return false;
        }
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            await Problem(context, StatusCodes.Status503ServiceUnavailable, "server shutting down", "reconnect to another node or later");
            return false;
        }
        if (services.Sessions.Count >= limits.WebSockets)
        {
            refusals.WebSocketRefused();
            context.Response.Headers.RetryAfter = "5";
            await Problem(context, StatusCodes.Status503ServiceUnavailable, "too many connections",
                $"this node holds {limits.WebSockets} WebSockets, as many as Broker:MaxConnections or its open-file limit allows; retry later or on another node");
            return false;
        }
        return true;
    }

    private static string? BearerOf(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.FirstOrDefault();
        return header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : null;
    }

    internal static Task Problem(HttpContext context, int status, string title, string detail) =>
        Results.Problem(title: title, detail: detail, statusCode: status).ExecuteAsync(context);
}
