using System.Text.Json;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Persistence;
using WsBroker.UserSync;
using WsBroker.UserSync.Contracts;

namespace WsBroker.Broker.Chat;

/// <summary>
/// Wires the chat to the rest of the broker when the host starts: presence notices on <c>/topic/presence</c>, closing the
/// sessions of a deleted user, and (embedded mode) seeding the demo users through the same UserSync events the user
/// service publishes.
/// </summary>
public sealed partial class ChatLifecycle(BrokerServices services, IPresence presence, LocalDelivery local, IUserEvents userEvents, IUserEventPublisher publisher, IUserStore users,
    IOptions<ChatOptions> options, BrokerMode mode, ILogger<ChatLifecycle> logger) : IHostedService
{
    internal static readonly (string Id, string Name, string Role)[] DemoUsers =
    [
        ("admin1", "Ada Admin", UserRoles.Admin),
        ("client1", "Carla Client", UserRoles.Client),
        ("client2", "Chris Client", UserRoles.Client),
        ("client3", "Cleo Client", UserRoles.Client),
    ];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        presence.Changed += Presence;
        userEvents.UserDeleted += id =>
        {
            var closed = services.Sessions.CloseUserSessions(id, "user deleted", DisconnectReason.UserDeleted);
            Log.UserDeleted(logger, id, closed);
        };
        if (options.Value.DemoUsers ?? mode.IsEmbedded) await SeedDemoUsersAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // Delivered to this node's subscribers only: in cluster mode every node sees the same transition and tells its own.
    private void Presence(string userId, bool online)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new { userId, online });
        local.Deliver(SharedMessage.Create(services.Ids.Next(), ChatDestination.Presence,
            [new("content-type", "application/json"), new("user", userId)], body, userId));
    }

    private async Task SeedDemoUsersAsync(CancellationToken cancellationToken)
    {
        // The consumer endpoint must be up first: an event published before its queue is bound (a cluster node's own
        // queue is new at its first start) would never reach this node, which would wait for it in vain.
        if (!await publisher.WaitUntilReadyAsync(s_seedWait, cancellationToken)) Log.BusNotReady(logger, s_seedWait.TotalSeconds);
        // Version 1: a real user service's later events (higher versions) win over the demo data.
        foreach (var (id, name, role) in DemoUsers)
            await publisher.PublishAsync(new UserCreated(id, name, role, 1, DateTimeOffset.UtcNow), cancellationToken);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(s_seedWait);
        try
        {
            foreach (var (id, _, _) in DemoUsers)
            {
                while (await users.FindAsync(id, wait.Token) is null) await Task.Delay(20, wait.Token);
            }
            Log.Seeded(logger, DemoUsers.Length);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Not fatal: the events are on the bus and are applied when it gets to them; the broker serves meanwhile.
            Log.SeedingSlow(logger, s_seedWait.TotalSeconds);
        }
    }

    private static readonly TimeSpan s_seedWait = TimeSpan.FromSeconds(30);

    private static partial class Log
    {
        [LoggerMessage(EventId = 610, Level = LogLevel.Information, Message = "user {UserId} deleted: closed {Sessions} sessions")]
        public static partial void UserDeleted(ILogger logger, string userId, int sessions);

        [LoggerMessage(EventId = 611, Level = LogLevel.Information, Message = "embedded mode: {Count} demo users (admin1, client1..3) seeded through the user events")]
        public static partial void Seeded(ILogger logger, int count);

        [LoggerMessage(EventId = 612, Level = LogLevel.Warning, Message = "the user-event bus was not ready within {Seconds} s; the demo users are published anyway")]
        public static partial void BusNotReady(ILogger logger, double seconds);

        [LoggerMessage(EventId = 613, Level = LogLevel.Warning, Message = "the demo users were not applied within {Seconds} s; starting without waiting for them")]
        public static partial void SeedingSlow(ILogger logger, double seconds);
    }
}

