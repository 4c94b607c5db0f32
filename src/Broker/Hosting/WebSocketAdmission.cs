using System.Globalization;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Sessions;

namespace WsBroker.Broker.Hosting;

/// <summary>Why an upgrade is refused: the HTTP status, the problem details' title and detail, and when to retry (seconds,
/// a <c>Retry-After</c> header; null: none).</summary>
public readonly record struct UpgradeRefusal(int Status, string Title, string Detail, int? RetryAfter = null);

/// <summary>A raw topic URL the broker takes: the destination, the <c>?since=</c> to resume after, and the user.</summary>
public sealed record RawTopicAdmission(Destination Destination, long? Since, BrokerPrincipal Principal);

/// <summary>
/// What both WebSocket front ends (<see cref="WebSocketEndpoint"/> on ASP.NET Core, <see cref="PipelineWebSocketEndpoint"/> on
/// Kestrel's connection layer) decide before an upgrade, so that they take and refuse the same requests with the same
/// statuses: capacity, the STOMP subprotocol, and a raw topic URL's destination, <c>since</c>, token and user.
/// </summary>
public sealed class WebSocketAdmission(BrokerServices services, IHostApplicationLifetime lifetime, ConnectionLimits limits, ConnectionRefusals refusals)
{
    private static readonly string[] s_subProtocols = ["v12.stomp", "v11.stomp", "v10.stomp"];
    private int _held;                                            // places held for upgrades whose sessions are not counted yet

    /// <summary>Holds a place for one more WebSocket, or says why not: 503 while the server shuts down or when the node
    /// holds as many as it may (<see cref="ConnectionLimits.WebSockets"/>: <c>Broker:MaxConnections</c>, or what the
    /// open-file limit allows), counting those whose upgrade is under way (a token to validate, a policy to ask) and those
    /// whose connection is still closing (<see cref="SessionRegistry.Closing"/>). A place held is given back with
    /// <see cref="Release"/> once its session is registered, or when none is made.</summary>
    public UpgradeRefusal? TryHold()
    {
        if (CheckStopping() is { } stopping) return stopping;
        if (Interlocked.Increment(ref _held) + services.Sessions.Count + services.Sessions.Closing <= limits.WebSockets) return null;
        Interlocked.Decrement(ref _held);
        return Full();
    }

    /// <summary>The node holds as many WebSockets as it may: counted, and the 503 to answer. Also for an upgrade that
    /// passed <see cref="TryHold"/> and found Kestrel's own limit on upgraded connections reached (a burst racing past it).</summary>
    public UpgradeRefusal Full()
    {
        refusals.WebSocketRefused();
        return new UpgradeRefusal(StatusCodes.Status503ServiceUnavailable, "too many connections",
            $"this node holds {limits.WebSockets} WebSockets, as many as Broker:MaxConnections or its open-file limit allows; retry later or on another node",
            RetryAfter: 5);
    }

    // 503 while the server shuts down (asked again by AdmitRawAsync after its awaits: a session the shutdown did not see would
    // not be told to close).
    private UpgradeRefusal? CheckStopping() => lifetime.ApplicationStopping.IsCancellationRequested
        ? new UpgradeRefusal(StatusCodes.Status503ServiceUnavailable, "server shutting down", "reconnect to another node or later")
        : null;

    /// <summary>Gives back a place <see cref="TryHold"/> held: its session is registered (and counted), or none was made.</summary>
    public void Release() => Interlocked.Decrement(ref _held);

    /// <summary>Runs the session made on a place <see cref="TryHold"/> held, and gives the place back: the session registers
    /// (and so is counted) before its run's first await, so by the time this returns it counts in the place's stead.</summary>
    public Task RunOnItsPlace(BrokerSession session)
    {
        try
        {
            return session.RunAsync();
        }
        finally
        {
            Release();
        }
    }

    /// <summary>The newest STOMP the client offers, in the client's own spelling (RFC 6455 §4.1: the client fails a
    /// connection whose chosen subprotocol is not one it offered, and browsers compare exactly); a client that offers none
    /// still gets STOMP (1.2 rules, CONNECT decides), one that offers only others is refused.</summary>
    public static UpgradeRefusal? ChooseSubProtocol(IEnumerable<string> offered, out string? chosen)
    {
        var list = offered as ICollection<string> ?? [.. offered];
        chosen = null;
        foreach (var known in s_subProtocols)
        {
            chosen = list.FirstOrDefault(p => string.Equals(p, known, StringComparison.OrdinalIgnoreCase));
            if (chosen is not null) break;
        }
        return list.Count > 0 && chosen is null
            ? new UpgradeRefusal(StatusCodes.Status400BadRequest, "unsupported WebSocket subprotocol", "offer v12.stomp, v11.stomp or v10.stomp")
            : null;
    }

    /// <summary>Judges a raw topic URL: <paramref name="path"/> after <c>/ws/topic/</c>, the <c>since</c> query value, and
    /// the token (<c>?access_token=</c>, else the Authorization header's bearer token).</summary>
    public async ValueTask<(RawTopicAdmission? Admitted, UpgradeRefusal? Refused)> AdmitRawAsync(string path, string? sinceText, string? token)
    {
        if (services.Destinations.Get(Destination.TopicPrefix + path, out var invalid) is not { } destination)
            return (null, new UpgradeRefusal(StatusCodes.Status400BadRequest, "invalid destination", invalid.ToMessage()));
        long? since = null;
        if (sinceText is not null)
        {
            if (!long.TryParse(sinceText, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                return (null, new UpgradeRefusal(StatusCodes.Status400BadRequest, "invalid since", "since must be a message id (0 for everything)"));
            if (services.FindReplaySource(destination) is null)
                return (null, new UpgradeRefusal(StatusCodes.Status400BadRequest, "invalid since", "since is only for stored destinations (chat conversations)"));
            since = value;
        }
        var (principal, error) = await services.Jwt.ValidateAsync(token);
        if (principal is null)
        {
            services.Metrics.AuthenticationFailure();
            return (null, new UpgradeRefusal(StatusCodes.Status401Unauthorized, "authentication failed", error!));
        }
        if (await services.Policy.CanConnectAsync(principal) is { } refused)
        {
            services.Metrics.AuthenticationFailure();
            return (null, new UpgradeRefusal(StatusCodes.Status403Forbidden, "forbidden", refused));
        }
        // The server may have begun to stop while the token and the policy were asked: its shutdown would not see the session.
        if (CheckStopping() is { } stopping) return (null, stopping);
        return (new RawTopicAdmission(destination, since, principal), null);
    }

    /// <summary>Raw URLs have no STOMP heart-beats: the socket is pinged every interval, and a client that answers no ping
    /// within twice the receive interval is gone (half-open socket) and is closed, like a silent STOMP client.</summary>
    public (TimeSpan Interval, TimeSpan Timeout) RawKeepAlive =>
        (TimeSpan.FromMilliseconds(Math.Max(1000, services.Options.HeartBeatSendMs)),
         services.Options.HeartBeatReceiveMs == 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(Math.Max(2000, 2L * services.Options.HeartBeatReceiveMs)));

    /// <summary>A bearer token from an Authorization header value.</summary>
    public static string? BearerOf(string? header) =>
        header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : null;
}
