using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker.Extensibility;

/// <summary>
/// Stored messages a SUBSCRIBE with <c>since:&lt;message-id&gt;</c> (a raw topic URL with <c>?since=</c>) is first given,
/// before live delivery: a plug-in that stores messages (the chat) implements it for its destinations.
/// </summary>
public interface IReplaySource
{
    /// <summary>Whether subscriptions to <paramref name="destination"/> may resume with <c>since</c>.</summary>
    bool CanReplay(Destination destination);

    /// <summary>The committed messages of <paramref name="destination"/> after <paramref name="sinceId"/>, in id order, at
    /// most the source's documented maximum (then <see cref="ReplayPage.NextId"/> says where the rest starts).</summary>
    Task<ReplayPage> ReplayAsync(Destination destination, long sinceId, CancellationToken cancellationToken);
}

/// <summary>One replay: the messages, the id of the first one left out when the maximum was reached, or the reason the
/// replay could not be made (<see cref="Error"/>, e.g. storage unavailable).</summary>
public sealed record ReplayPage(IReadOnlyList<SharedMessage> Messages, long? NextId = null, string? Error = null);
