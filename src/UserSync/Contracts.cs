namespace WsBroker.UserSync.Contracts;

// The events the user service publishes (docs/design.md §5). MassTransit names their exchanges by type:
// "WsBroker.UserSync.Contracts:UserCreated" and so on. Role is "admin" or "client" (see UserRoles); Version orders the
// events of one user (a higher version wins, so redelivery and reordering are harmless).

/// <summary>A user was created.</summary>
public sealed record UserCreated(string UserId, string Name, string Role, long Version, DateTimeOffset OccurredAt);

/// <summary>A user's name or role changed.</summary>
public sealed record UserUpdated(string UserId, string Name, string Role, long Version, DateTimeOffset OccurredAt);

/// <summary>A user was deleted: it can no longer send or receive, and its open sessions are closed.</summary>
public sealed record UserDeleted(string UserId, string Name, string Role, long Version, DateTimeOffset OccurredAt);
