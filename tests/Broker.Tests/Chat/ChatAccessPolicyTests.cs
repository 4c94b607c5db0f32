using Microsoft.Extensions.Options;
using WsBroker.Broker.Access;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Chat;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Options;
using WsBroker.Persistence;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>The chat's one access policy: user x destination x action, with the users table behind it.</summary>
public class ChatAccessPolicyTests
{
    private static readonly DateTimeOffset s_now = DateTimeOffset.UtcNow;
    private readonly InMemoryUsers _users = new(
        new UserRecord("admin1", "Ada", UserRole.Admin, 1, null, s_now),
        new UserRecord("admin2", "Al", UserRole.Admin, 1, null, s_now),
        new UserRecord("client1", "Carla", UserRole.Client, 1, null, s_now),
        new UserRecord("client2", "Chris", UserRole.Client, 1, null, s_now),
        new UserRecord("gone", "Gone", UserRole.Client, 2, s_now, s_now));

    private ChatAccessPolicy Policy(params AclRule[] rules) =>
        new(_users, new TopicAcl(Microsoft.Extensions.Options.Options.Create(new AclOptions { Rules = [.. rules] })));

    private static BrokerPrincipal User(string id, string role) => new(id, role, id, DateTimeOffset.UtcNow.AddHours(1));

    private static Destination Parse(string text) => Destination.Parse(text, out var error) ?? throw new ArgumentException(error.ToMessage());

    [Theory]
    [InlineData("/topic/private-chat/admin1/client1", ChatDestinationKind.Conversation, "admin1", "client1")]
    [InlineData("/topic/private-chat/admin1/*", ChatDestinationKind.AdminConversations, "admin1", null)]
    [InlineData("/topic/private-chat/admin1/#", ChatDestinationKind.AdminConversations, "admin1", null)]
    [InlineData("/topic/private-chat/*/client1", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/private-chat/#", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/private-chat/admin1", ChatDestinationKind.Malformed, null, null)]
    [InlineData("/topic/private-chat/admin1/client1/extra", ChatDestinationKind.Malformed, null, null)]
    [InlineData("/topic/private-chat/admin1/client1/*", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/typing/client1", ChatDestinationKind.Typing, "client1", null)]
    [InlineData("/topic/typing/*", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/typing/client1/x", ChatDestinationKind.Malformed, null, null)]
    [InlineData("/topic/typing/client1/*", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/seen/admin1", ChatDestinationKind.Seen, "admin1", null)]
    [InlineData("/topic/presence", ChatDestinationKind.Presence, null, null)]
    [InlineData("/topic/#", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/*/client1", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/*", ChatDestinationKind.Other, null, null)]
    [InlineData("/topic/news/#", ChatDestinationKind.Other, null, null)]
    [InlineData("/topic/presence/x", ChatDestinationKind.Other, null, null)]
    [InlineData("/user/queue/errors", ChatDestinationKind.Other, null, null)]
    public void Classify_Destination_HasTheDocumentedShape(string destination, ChatDestinationKind kind, string? userId, string? clientId)
    {
        var parsed = (ChatDestination)Policy().Classify(Parse(destination))!;
        Assert.Equal(kind, parsed.Kind);
        Assert.Equal(userId, parsed.UserId);
        Assert.Equal(clientId, parsed.ClientId);
    }

    [Theory]
    [InlineData("admin1", "admin", "/topic/private-chat/admin1/client1", true)]
    [InlineData("client1", "client", "/topic/private-chat/admin1/client1", true)]
    [InlineData("client2", "client", "/topic/private-chat/admin1/client1", false)]
    [InlineData("admin2", "admin", "/topic/private-chat/admin1/client1", false)]
    [InlineData("admin1", "client", "/topic/private-chat/admin1/client1", false)]   // the id fits, the role does not
    [InlineData("admin1", "admin", "/topic/private-chat/admin1/*", true)]
    [InlineData("admin2", "admin", "/topic/private-chat/admin1/*", false)]
    [InlineData("client1", "client", "/topic/private-chat/admin1/*", false)]
    [InlineData("client1", "client", "/topic/typing/client1", true)]
    [InlineData("client1", "client", "/topic/typing/client2", false)]
    [InlineData("client1", "client", "/topic/seen/client1", true)]
    [InlineData("client1", "client", "/topic/seen/admin1", false)]
    [InlineData("client1", "client", "/topic/presence", true)]
    [InlineData("client1", "client", "/topic/#", false)]
    [InlineData("admin1", "admin", "/topic/private-chat/*/*", false)]
    [InlineData("client1", "client", "/topic/news", true)]
    [InlineData("client1", "client", "/user/queue/errors", true)]
    [InlineData("client1", "operator", "/topic/private-chat/admin1/client1", false)]
    public async Task CanSubscribe_UserAndDestination_FollowsTheAccessTable(string user, string role, string destination, bool allowed)
    {
        var error = await Policy().CanSubscribeAsync(User(user, role), Parse(destination));
        Assert.Equal(allowed, error is null);
        if (!allowed) Assert.StartsWith("access denied", error);
    }

    [Theory]
    [InlineData("admin1", "/topic/private-chat/admin1/client1", null)]
    [InlineData("client1", "/topic/private-chat/admin1/client1", null)]
    [InlineData("client2", "/topic/private-chat/admin1/client1", "could-not-send-message: sender not a party of the conversation")]
    [InlineData("admin1", "/topic/private-chat/admin1/nobody", "could-not-send-message: receiver unknown")]
    [InlineData("admin1", "/topic/private-chat/admin1/gone", "could-not-send-message: receiver deleted")]
    [InlineData("gone", "/topic/private-chat/admin1/gone", "could-not-send-message: sender deleted")]
    [InlineData("client1", "/topic/private-chat/client2/client1", "could-not-send-message: client2 is not an administrator")]
    [InlineData("admin1", "/topic/private-chat/admin1/admin2", "could-not-send-message: admin2 is not a customer")]
    [InlineData("client1", "/topic/typing/admin1", null)]
    [InlineData("client1", "/topic/typing/client2", "could-not-send-message: typing only between a customer and an administrator")]
    [InlineData("client1", "/topic/typing/client1", "could-not-send-message: cannot send to yourself")]
    [InlineData("client1", "/topic/seen/admin1", null)]
    [InlineData("client1", "/topic/presence", "could-not-send-message: presence is published by the broker only")]
    [InlineData("admin1", "/topic/private-chat/admin1/*", "could-not-send-message: cannot send to a wildcard destination")]
    [InlineData("client1", "/topic/news/*", "could-not-send-message: cannot send to a wildcard destination")]
    [InlineData("client1", "/user/queue/errors", "could-not-send-message: /user destinations are written by the broker only")]
    [InlineData("client1", "/topic/news", null)]
    public async Task CanSend_UserAndDestination_AllowsOrNamesTheRejection(string user, string destination, string? expected)
    {
        Assert.Equal(expected, await Policy().CanSendAsync(User(user, "client"), Parse(destination)));
    }

    [Fact]
    public async Task AclRules_GovernTheGeneralDestinations_NotTheChatOnes()
    {
        var policy = Policy(new AclRule { Destination = "/topic/#", Subscribe = ["role:admin"], Send = ["role:admin"] });
        Assert.NotNull(await policy.CanSubscribeAsync(User("client1", "client"), Parse("/topic/news")));
        Assert.NotNull(await policy.CanSendAsync(User("client1", "client"), Parse("/topic/news")));
        Assert.Null(await policy.CanSubscribeAsync(User("admin1", "admin"), Parse("/topic/news")));
        Assert.Null(await policy.CanSubscribeAsync(User("client1", "client"), Parse("/topic/private-chat/admin1/client1")));
    }

    [Fact]
    public async Task CanConnect_DeletedUser_IsRefused()
    {
        Assert.Equal("user deleted", await Policy().CanConnectAsync(User("gone", "client")));
        Assert.Null(await Policy().CanConnectAsync(User("client1", "client")));
    }

    [Fact]
    public async Task CanSend_UsersTableDown_IsRefusedAsStorageUnavailable()
    {
        _users.Down = true;
        Assert.Equal("could-not-send-message: storage unavailable",
            await Policy().CanSendAsync(User("client1", "client"), Parse("/topic/private-chat/admin1/client1")));
    }

    [Fact]
    public void ConversationBetween_AdminAndClient_IsOrderedAdminFirst_AndNullForSameRoles()
    {
        var admin = new UserRecord("a", "A", UserRole.Admin, 1, null, s_now);
        var admin2 = new UserRecord("b", "B", UserRole.Admin, 1, null, s_now);
        var client = new UserRecord("c", "C", UserRole.Client, 1, null, s_now);
        Assert.Equal(("a", "c"), ChatAccessPolicy.ConversationBetween(client, admin));
        Assert.Equal(("a", "c"), ChatAccessPolicy.ConversationBetween(admin, client));
        Assert.Null(ChatAccessPolicy.ConversationBetween(admin, admin2));
    }

    /// <summary>The users table as the policy sees it, for a unit test of the policy alone (the real stores are tested
    /// against SQLite and MariaDB in Persistence.Tests).</summary>
    private sealed class InMemoryUsers(params UserRecord[] users) : IUserStore
    {
        public bool Down { get; set; }

        public event Action<UserChange>? Changed { add { } remove { } }

        public ValueTask<UserRecord?> FindAsync(string id, CancellationToken cancellationToken = default) =>
            Down ? throw new PersistenceUnavailableException() : ValueTask.FromResult(users.FirstOrDefault(u => u.Id == id));

        public Task<UserChangeOutcome> UpsertAsync(string id, string name, UserRole role, long version, DateTimeOffset occurredAt, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public Task<UserChangeOutcome> DeleteAsync(string id, long version, DateTimeOffset occurredAt, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public Task<IReadOnlyList<UserRecord>> ListAsync(UserRole? role = null, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<UserRecord>>([.. users.Where(u => role is null || u.Role == role)]);
    }
}
