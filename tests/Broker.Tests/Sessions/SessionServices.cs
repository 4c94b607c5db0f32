using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WsBroker.Broker.Access;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>The services a broker gives its sessions, built without a host: for sessions driven through in-memory
/// transports.</summary>
internal static class SessionServices
{
    public static BrokerMetrics Metrics() =>
        new(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());

    public static BrokerServices Create(BrokerOptions brokerOptions, string signingKey, ISendHandler[]? handlers = null,
        IReplaySource[]? replaySources = null, int clockSkewSeconds = 30, ISubscriptionHandler[]? subscriptionHandlers = null)
    {
        var options = Microsoft.Extensions.Options.Options.Create(brokerOptions);
        var router = new TopicRouter();
        var metrics = Metrics();
        return new BrokerServices(options, router, new InProcessBackplane(new LocalDelivery(router, metrics, options), router),
            new SessionRegistry(), new JwtValidator(Microsoft.Extensions.Options.Options.Create(new AuthOptions { SigningKey = signingKey, ClockSkewSeconds = clockSkewSeconds })),
            new AclPolicy(new TopicAcl(Microsoft.Extensions.Options.Options.Create(new AclOptions()))), handlers ?? [], metrics,
            new MessageIdGenerator(0), NullLoggerFactory.Instance, replaySources, subscriptionHandlers: subscriptionHandlers);
    }
}
