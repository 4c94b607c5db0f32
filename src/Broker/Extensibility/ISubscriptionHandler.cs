using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker.Extensibility;

/// <summary>
/// Serves the subscriptions to some <c>/user/queue/…</c> destinations itself (the chat's <c>/user/queue/inbox</c>): the
/// engine checks access, parses <c>since</c>, makes the <see cref="Subscription"/> and hands it over; the handler
/// delivers to it (<see cref="Subscription.Deliver"/>) for as long as it lives. Such a subscription never enters the router.
/// </summary>
public interface ISubscriptionHandler
{
    /// <summary>Whether this handler serves subscriptions to <paramref name="destination"/>.</summary>
    bool Handles(Destination destination);

    /// <summary>Takes <paramref name="subscription"/> of <paramref name="user"/>; <paramref name="since"/> is the SUBSCRIBE's
    /// <c>since</c> header (null: none). Completes once what the subscription is owed first (a snapshot, or what changed
    /// after <paramref name="since"/>) is queued to it, so the SUBSCRIBE's RECEIPT follows it; null when served, else the
    /// reason (the session then answers with an ERROR and closes).</summary>
    ValueTask<string?> SubscribeAsync(BrokerPrincipal user, Subscription subscription, long? since, CancellationToken cancellationToken);

    /// <summary>The subscription ended (UNSUBSCRIBE, or its session closed). Must not block.</summary>
    void Unsubscribed(Subscription subscription);
}
