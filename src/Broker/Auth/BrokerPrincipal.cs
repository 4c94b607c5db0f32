namespace WsBroker.Broker.Auth;

/// <summary>The authenticated user of a connection or request, from the JWT claims <c>sub</c>, <c>role</c>, <c>name</c>, <c>exp</c>.</summary>
public sealed record BrokerPrincipal(string UserId, string Role, string Name, DateTimeOffset ExpiresAt);
