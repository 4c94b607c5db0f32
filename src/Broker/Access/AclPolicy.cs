using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Access;

/// <summary>The engine's rule: any authenticated user may use any topic, unless an <c>Acl</c> rule says otherwise;
/// <c>/user/queue/…</c> is written by the broker only.</summary>
public sealed class AclPolicy(TopicAcl acl) : IAccessPolicy
{
    public ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, Destination destination) =>
        ValueTask.FromResult(destination.Kind == DestinationKind.UserQueue ? null : acl.CanSubscribe(user, destination));

    public ValueTask<string?> CanSendAsync(BrokerPrincipal user, Destination destination) =>
        ValueTask.FromResult(SendRules.Check(destination) ?? acl.CanSend(user, destination));
}
