using MassTransit;
using Microsoft.Extensions.Logging;
using WsBroker.Persistence;
using WsBroker.UserSync.Contracts;

namespace WsBroker.UserSync;

/// <summary>An event that can never be applied (empty id, unknown role, bad version): not retried, it goes to the error queue.</summary>
public sealed class InvalidUserEventException(string message) : Exception(message)
{
    public InvalidUserEventException() : this("invalid user event") { }
    public InvalidUserEventException(string message, Exception inner) : this(message + ": " + inner.Message) { }
}

/// <summary>In-process announcements of applied user events (the broker closes a deleted user's sessions, and tells the
/// live inboxes of a renamed or deleted user). Raised on every node of a cluster, also by the node that finds the event
/// already applied by another (the shared database holds it): each node reads every event from a queue of its own.</summary>
public interface IUserEvents
{
    event Action<string>? UserDeleted;

    /// <summary>A user event was consumed: the user as the database holds it now (which may be newer than the event). A
    /// redelivered event raises it again with the same record: handlers compare with what they know.</summary>
    event Action<UserRecord>? UserChanged;
}

internal sealed class UserEvents : IUserEvents
{
    public event Action<string>? UserDeleted;

    public event Action<UserRecord>? UserChanged;

    public void RaiseDeleted(string userId) => UserDeleted?.Invoke(userId);

    public void RaiseChanged(UserRecord user) => UserChanged?.Invoke(user);

    /// <summary>Raises <see cref="UserChanged"/> with the stored row of <paramref name="userId"/> (the store's cache holds
    /// it after the upsert or delete, applied or stale).</summary>
    public static async Task RaiseChangedAsync(IUserEvents events, IUserStore users, string userId, CancellationToken cancellationToken)
    {
        if (events is UserEvents raise && await users.FindAsync(userId, cancellationToken).ConfigureAwait(false) is { } user) raise.RaiseChanged(user);
    }
}

internal static class UserEventRules
{
    public static UserRole Role(string? role) => UserRoles.TryParse(role, out var parsed)
        ? parsed : throw new InvalidUserEventException($"role must be '{UserRoles.Admin}' or '{UserRoles.Client}', not '{role}'");

    public static void Check(string? userId, long version)
    {
        if (string.IsNullOrWhiteSpace(userId)) throw new InvalidUserEventException("UserId must not be empty");
        if (userId.Length > 64) throw new InvalidUserEventException("UserId is longer than 64 characters");
        if (version <= 0) throw new InvalidUserEventException("Version must be positive");
    }

    public static string Name(string? name, string userId) =>
        string.IsNullOrWhiteSpace(name) ? userId : name.Length > 200 ? throw new InvalidUserEventException("Name is longer than 200 characters") : name;
}

public sealed class UserCreatedConsumer(IUserStore users, IUserEvents events, ILogger<UserCreatedConsumer> logger) : IConsumer<UserCreated>
{
    public async Task Consume(ConsumeContext<UserCreated> context)
    {
        var e = context.Message;
        UserEventRules.Check(e.UserId, e.Version);
        var outcome = await users.UpsertAsync(e.UserId, UserEventRules.Name(e.Name, e.UserId), UserEventRules.Role(e.Role), e.Version, e.OccurredAt, context.CancellationToken);
        Log.Applied(logger, "created", e.UserId, e.Version, outcome);
        await UserEvents.RaiseChangedAsync(events, users, e.UserId, context.CancellationToken);
    }
}

public sealed class UserUpdatedConsumer(IUserStore users, IUserEvents events, ILogger<UserUpdatedConsumer> logger) : IConsumer<UserUpdated>
{
    public async Task Consume(ConsumeContext<UserUpdated> context)
    {
        var e = context.Message;
        UserEventRules.Check(e.UserId, e.Version);
        var outcome = await users.UpsertAsync(e.UserId, UserEventRules.Name(e.Name, e.UserId), UserEventRules.Role(e.Role), e.Version, e.OccurredAt, context.CancellationToken);
        Log.Applied(logger, "updated", e.UserId, e.Version, outcome);
        await UserEvents.RaiseChangedAsync(events, users, e.UserId, context.CancellationToken);
    }
}

public sealed class UserDeletedConsumer(IUserStore users, IUserEvents events, ILogger<UserDeletedConsumer> logger) : IConsumer<UserDeleted>
{
    public async Task Consume(ConsumeContext<UserDeleted> context)
    {
        var e = context.Message;
        UserEventRules.Check(e.UserId, e.Version);
        var outcome = await users.DeleteAsync(e.UserId, e.Version, e.OccurredAt, context.CancellationToken);
        Log.Applied(logger, "deleted", e.UserId, e.Version, outcome);
        // Stale: the shared database already holds this version or a newer one (another node of a cluster applied it, or
        // this is a redelivery). The user's sessions on this node still close if the user is deleted now.
        var deleted = outcome == UserChangeOutcome.Applied
            || (await users.FindAsync(e.UserId, context.CancellationToken).ConfigureAwait(false))?.IsDeleted == true;
        if (deleted && events is UserEvents raise) raise.RaiseDeleted(e.UserId);
        await UserEvents.RaiseChangedAsync(events, users, e.UserId, context.CancellationToken);
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "user {Kind} {UserId} v{Version}: {Outcome}")]
    public static partial void Applied(ILogger logger, string kind, string userId, long version, UserChangeOutcome outcome);
}
