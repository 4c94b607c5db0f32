using System.Net.WebSockets;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Connections;

/// <summary>Called by the host for <c>/ws</c> and <c>/ws/topic/…</c>: negotiates the WebSocket upgrade and runs the connection.</summary>
public sealed class StompConnectionHandler(BrokerServices services, IHostApplicationLifetime lifetime)
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
        var connection = new StompConnection(socket, services, services.Sessions.NextSessionId(), context.Request.Query["access_token"].FirstOrDefault());
        await connection.RunAsync();
    }

    /// <summary>GET /ws/topic/{**path}: a raw topic URL with JSON deliveries.</summary>
    public async Task HandleRawAsync(HttpContext context, string prefix, string path)
    {
        if (!await CanAcceptAsync(context)) return;
        var destination = prefix + path;
        if (TopicRouter.ValidatePattern(destination) is { } invalid)
        {
            await Problem(context, StatusCodes.Status400BadRequest, "invalid destination", invalid);
            return;
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
        var connection = new RawTopicConnection(socket, services, services.Sessions.NextSessionId(), destination, principal);
        await connection.RunAsync();
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
        if (services.Options.MaxConnections > 0 && services.Sessions.Count >= services.Options.MaxConnections)
        {
            await Problem(context, StatusCodes.Status503ServiceUnavailable, "too many connections", "Broker:MaxConnections reached");
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

/// <summary>One timer for all connections: sends due heart-beats and closes silent or never-connected connections.</summary>
public sealed class HeartBeatScanner(BrokerServices services) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = services.Options;
        var smallest = new[] { options.HeartBeatSendMs, options.HeartBeatReceiveMs, options.ConnectTimeoutMs }.Where(v => v > 0).DefaultIfEmpty(1000).Min();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Clamp(smallest / 4, 10, 1000)));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = Environment.TickCount64;
            foreach (var connection in services.Sessions.All)
            {
                connection.SendHeartBeatIfDue(now);
                connection.CheckTimeouts(now);
            }
        }
    }
}

/// <summary>Graceful shutdown: runs in the "stopping" phase, before any hosted service (Kestrel included) stops: tells every
/// client, flushes what is queued, closes; Kestrel then finds the WebSocket requests finished.</summary>
public sealed class ShutdownCoordinator(BrokerServices services) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) =>
        services.Sessions.ShutdownAsync(TimeSpan.FromMilliseconds(services.Options.ShutdownTimeoutMs));

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
