using System.Diagnostics.Metrics;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker.Sessions;

/// <summary>The sessions' own gauges, registered by this part (connections, sessions by protocol, subscriptions) when the host starts: they
/// are read from the session registry and the router at each collection.</summary>
public sealed class SessionGauges(BrokerMetrics metrics, SessionRegistry sessions, TopicRouter router) : IHostedService
{
    private static readonly KeyValuePair<string, object?> s_stomp = new("protocol", "stomp");
    private static readonly KeyValuePair<string, object?> s_raw = new("protocol", "raw");

    public Task StartAsync(CancellationToken cancellationToken)
    {
        metrics.ObserveGauge("wsbroker_connections", () => sessions.Count, "{connection}", "Open WebSocket connections.");
        metrics.ObserveGauge("wsbroker_sessions", SessionsByProtocol, "{session}", "Authenticated sessions by protocol.");
        metrics.ObserveGauge("wsbroker_subscriptions", () => router.Count, "{subscription}", "Subscriptions in the router.");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private IEnumerable<Measurement<long>> SessionsByProtocol()
    {
        long stomp = 0, raw = 0;
        foreach (var session in sessions.All)
        {
            if (!session.IsAuthenticated) continue;
            if (session.Protocol == "stomp") stomp++;
            else if (session.Protocol == "raw") raw++;
        }
        return [new(stomp, s_stomp), new(raw, s_raw)];
    }
}
