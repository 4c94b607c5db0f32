using Microsoft.Extensions.Options;
using WsBroker.Broker.Access;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>The singletons every session uses, gathered so a session holds one reference, not ten.</summary>
public sealed class BrokerServices
{
    public BrokerServices(IOptions<BrokerOptions> options, TopicRouter router, IBackplane backplane, SessionRegistry sessions, JwtValidator jwt,
        IAccessPolicy policy, IEnumerable<ISendHandler> sendHandlers, BrokerMetrics metrics, MessageIdGenerator ids, ILoggerFactory loggerFactory,
        IEnumerable<IReplaySource>? replaySources = null, IEnumerable<IDeliveryObserver>? deliveryObservers = null,
        IEnumerable<ISubscriptionHandler>? subscriptionHandlers = null)
    {
        Options = options.Value;
        Limits = Options.ToLimits();
        Router = router;
        Backplane = backplane;
        Sessions = sessions;
        Jwt = jwt;
        Policy = policy;
        SendHandlers = [.. sendHandlers];
        ReplaySources = [.. replaySources ?? []];
        DeliveryObservers = [.. deliveryObservers ?? []];
        SubscriptionHandlers = [.. subscriptionHandlers ?? []];
        Metrics = metrics;
        Ids = ids;
        Destinations = new DestinationCache(policy.Classify);
        Logger = loggerFactory.CreateLogger("WsBroker.Broker.Connection");
        ServerHeartBeat = new StompHeartBeat(Options.HeartBeatSendMs, Options.HeartBeatReceiveMs);
    }

    public BrokerOptions Options { get; }
    public StompLimits Limits { get; }
    public TopicRouter Router { get; }
    public IBackplane Backplane { get; }
    public SessionRegistry Sessions { get; }
    public JwtValidator Jwt { get; }
    public IAccessPolicy Policy { get; }
    public ISendHandler[] SendHandlers { get; }
    public IReplaySource[] ReplaySources { get; }
    public IDeliveryObserver[] DeliveryObservers { get; }
    public ISubscriptionHandler[] SubscriptionHandlers { get; }
    public BrokerMetrics Metrics { get; }
    public MessageIdGenerator Ids { get; }
    public DestinationCache Destinations { get; }
    public ILogger Logger { get; }
    public StompHeartBeat ServerHeartBeat { get; }

    public IDeliveryObserver? FindDeliveryObserver(Destination destination)
    {
        foreach (var observer in DeliveryObservers)
        {
            if (observer.Observes(destination)) return observer;
        }
        return null;
    }

    public ISubscriptionHandler? FindSubscriptionHandler(Destination destination)
    {
        foreach (var handler in SubscriptionHandlers)
        {
            if (handler.Handles(destination)) return handler;
        }
        return null;
    }

    public IReplaySource? FindReplaySource(Destination destination)
    {
        foreach (var source in ReplaySources)
        {
            if (source.CanReplay(destination)) return source;
        }
        return null;
    }

    public ISendHandler? FindSendHandler(Destination destination)
    {
        foreach (var handler in SendHandlers)
        {
            if (handler.Handles(destination)) return handler;
        }
        return null;
    }
}
