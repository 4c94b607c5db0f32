using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Access;

/// <summary>
/// Who may connect and who may use which destination: the one place for access rules. Registered in DI (the engine's
/// <see cref="AclPolicy"/>, or a plug-in's such as the chat's); the engine asks it at CONNECT, on every SUBSCRIBE and on
/// every SEND, with the destination already parsed.
/// </summary>
public interface IAccessPolicy
{
    /// <summary>What this policy makes of a destination, computed once per distinct destination and kept in
    /// <see cref="Destination.Classification"/> (null: nothing special).</summary>
    object? Classify(Destination destination) => null;

    /// <summary>Asked once per connection after the token is valid: null when the user may connect; else the message of
    /// the ERROR that refuses it (STOMP) or of the 403 problem (raw topic URL).</summary>
    ValueTask<string?> CanConnectAsync(BrokerPrincipal user) => ValueTask.FromResult<string?>(null);

    /// <summary>null when allowed; else the message of the ERROR that closes the connection.</summary>
    ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, Destination destination);

    /// <summary>null when allowed; else the business rejection delivered on <c>/user/queue/errors</c> (connection kept).</summary>
    ValueTask<string?> CanSendAsync(BrokerPrincipal user, Destination destination);
}
