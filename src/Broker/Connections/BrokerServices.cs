using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Connections;

/// <summary>The singletons every connection uses, gathered so a connection holds one reference, not ten.</summary>
public sealed class BrokerServices
{
    public BrokerServices(IOptions<BrokerOptions> options, TopicRouter router, SessionRegistry sessions, JwtValidator jwt,
        IDestinationPolicy policy, IEnumerable<ISendHandler> sendHandlers, BrokerMetrics metrics, ILoggerFactory loggerFactory)
    {
        Options = options.Value;
        Limits = Options.ToLimits();
        Router = router;
        Sessions = sessions;
        Jwt = jwt;
        Policy = policy;
        SendHandlers = sendHandlers.ToArray();
        Metrics = metrics;
        Ids = new MessageIdGenerator(Options.NodeId);
        Logger = loggerFactory.CreateLogger("WsBroker.Broker.Connection");
        ServerHeartBeat = new StompHeartBeat(Options.HeartBeatSendMs, Options.HeartBeatReceiveMs);
    }

    public BrokerOptions Options { get; }
    public StompLimits Limits { get; }
    public TopicRouter Router { get; }
    public SessionRegistry Sessions { get; }
    public JwtValidator Jwt { get; }
    public IDestinationPolicy Policy { get; }
    public ISendHandler[] SendHandlers { get; }
    public BrokerMetrics Metrics { get; }
    public MessageIdGenerator Ids { get; }
    public ILogger Logger { get; }
    public StompHeartBeat ServerHeartBeat { get; }

    /// <summary>Delivers a message to every matching subscription; never waits for a subscriber.</summary>
    public int Publish(SharedMessage message)
    {
        var subscriptions = Router.Match(message.Destination);
        var delivered = 0;
        foreach (var subscription in subscriptions)
        {
            if (subscription.Sink.TryDeliver(subscription, message)) delivered++;
        }
        Metrics.Delivered(delivered);
        return delivered;
    }

    public ISendHandler? FindSendHandler(string destination)
    {
        foreach (var handler in SendHandlers)
        {
            if (handler.CanHandle(destination)) return handler;
        }
        return null;
    }
}
