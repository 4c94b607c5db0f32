using WsBroker.Broker.Chat;
using WsBroker.Persistence;

namespace WsBroker.Broker.Tests.Chat;

public class ChatAccessTests
{
    [Theory]
    [InlineData("/topic/private-chat/admin1/client1", ChatDestinationKind.Conversation, "admin1", "client1")]
    [InlineData("/topic/private-chat/admin1/*", ChatDestinationKind.AdminConversations, "admin1", null)]
    [InlineData("/topic/private-chat/admin1/#", ChatDestinationKind.AdminConversations, "admin1", null)]
    [InlineData("/topic/private-chat/*/client1", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/private-chat/#", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/private-chat/admin1", ChatDestinationKind.Malformed, null, null)]
    [InlineData("/topic/private-chat/admin1/client1/extra", ChatDestinationKind.Malformed, null, null)]
    [InlineData("/topic/typing/client1", ChatDestinationKind.Typing, "client1", null)]
    [InlineData("/topic/typing/*", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/seen/admin1", ChatDestinationKind.Seen, "admin1", null)]
    [InlineData("/topic/seen/", ChatDestinationKind.Malformed, null, null)]
    [InlineData("/topic/presence", ChatDestinationKind.Presence, null, null)]
    [InlineData("/topic/#", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/*/client1", ChatDestinationKind.WildcardOverChat, null, null)]
    [InlineData("/topic/*", ChatDestinationKind.Other, null, null)]
    [InlineData("/topic/news.*", ChatDestinationKind.Other, null, null)]
    [InlineData("/topic/news/#", ChatDestinationKind.Other, null, null)]
    [InlineData("/queue/jobs", ChatDestinationKind.Other, null, null)]
    public void Parse_Destination_HasTheDocumentedShape(string destination, ChatDestinationKind kind, string? userId, string? clientId)
    {
        var parsed = ChatDestination.Parse(destination);
        Assert.Equal(kind, parsed.Kind);
        Assert.Equal(userId, parsed.UserId);
        Assert.Equal(clientId, parsed.ClientId);
    }

    [Theory]
    [InlineData("admin1", UserRole.Admin, "/topic/private-chat/admin1/client1", true)]
    [InlineData("client1", UserRole.Client, "/topic/private-chat/admin1/client1", true)]
    [InlineData("client2", UserRole.Client, "/topic/private-chat/admin1/client1", false)]
    [InlineData("admin2", UserRole.Admin, "/topic/private-chat/admin1/client1", false)]
    [InlineData("admin1", UserRole.Client, "/topic/private-chat/admin1/client1", false)]   // the id fits, the role does not
    [InlineData("admin1", UserRole.Admin, "/topic/private-chat/admin1/*", true)]
    [InlineData("admin2", UserRole.Admin, "/topic/private-chat/admin1/*", false)]
    [InlineData("client1", UserRole.Client, "/topic/private-chat/admin1/*", false)]
    [InlineData("client1", UserRole.Client, "/topic/typing/client1", true)]
    [InlineData("client1", UserRole.Client, "/topic/typing/client2", false)]
    [InlineData("client1", UserRole.Client, "/topic/seen/client1", true)]
    [InlineData("client1", UserRole.Client, "/topic/seen/admin1", false)]
    [InlineData("client1", UserRole.Client, "/topic/presence", true)]
    [InlineData("client1", UserRole.Client, "/topic/#", false)]
    [InlineData("admin1", UserRole.Admin, "/topic/private-chat/*/*", false)]
    [InlineData("client1", UserRole.Client, "/topic/news", true)]
    [InlineData("client1", null, "/topic/private-chat/admin1/client1", false)]
    public void CanSubscribe_UserAndDestination_FollowsTheAccessTable(string user, UserRole? role, string destination, bool allowed)
    {
        var error = ChatAccess.CanSubscribe(user, role, destination);
        Assert.Equal(allowed, error is null);
        if (!allowed) Assert.StartsWith("access denied", error);
    }

    [Theory]
    [InlineData("admin1", "/topic/private-chat/admin1/client1", null)]
    [InlineData("client1", "/topic/private-chat/admin1/client1", null)]
    [InlineData("client2", "/topic/private-chat/admin1/client1", "could-not-send-message: sender not a party of the conversation")]
    [InlineData("client1", "/topic/typing/admin1", null)]
    [InlineData("client1", "/topic/typing/client1", "could-not-send-message: cannot send to yourself")]
    [InlineData("client1", "/topic/seen/admin1", null)]
    [InlineData("client1", "/topic/presence", "could-not-send-message: presence is published by the broker only")]
    [InlineData("admin1", "/topic/private-chat/admin1/*", "could-not-send-message: cannot send to a wildcard destination")]
    [InlineData("client1", "/topic/news", null)]
    public void CanSend_UserAndDestination_AllowsOrNamesTheRejection(string user, string destination, string? expected)
    {
        Assert.Equal(expected, ChatAccess.CanSend(user, UserRole.Client, destination));
    }

    [Fact]
    public void ConversationBetween_AdminAndClient_IsOrderedAdminFirst_AndNullForSameRoles()
    {
        var now = DateTimeOffset.UtcNow;
        var admin = new UserRecord("a", "A", UserRole.Admin, 1, null, now);
        var admin2 = new UserRecord("b", "B", UserRole.Admin, 1, null, now);
        var client = new UserRecord("c", "C", UserRole.Client, 1, null, now);
        Assert.Equal(("a", "c"), ChatAccess.ConversationBetween(client, admin));
        Assert.Equal(("a", "c"), ChatAccess.ConversationBetween(admin, client));
        Assert.Null(ChatAccess.ConversationBetween(admin, admin2));
    }
}
