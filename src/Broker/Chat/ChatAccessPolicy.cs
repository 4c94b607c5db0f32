using WsBroker.Broker.Access;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>
/// The one access policy when the chat runs (docs/design.md §3 "Destinations"): the chat's fixed table for its own
/// destinations, the <c>Acl</c> rules for the general ones. A chat SEND is allowed only between two live users of the
/// users table who sit in the right slots of the conversation (an administrator and a customer); a user the user service
/// deleted may not connect at all, even with a token still valid.
/// </summary>
public sealed class ChatAccessPolicy(IUserStore users, TopicAcl acl) : IAccessPolicy
{
    public object? Classify(Destination destination) => ChatDestination.Parse(destination);

    public async ValueTask<string?> CanConnectAsync(BrokerPrincipal user)
    {
        try
        {
            return await users.FindAsync(user.UserId) is { IsDeleted: true } ? "user deleted" : null;
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or PersistenceUnavailableException)
        {
            // The database is down: let the token decide (every chat SEND checks the users again before it is stored).
            return null;
        }
    }

    public ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, Destination destination)
    {
        if (destination.Kind == DestinationKind.UserQueue) return ValueTask.FromResult<string?>(null);
        var chat = ChatDestination.Of(destination);
        var role = RoleOf(user);
        return ValueTask.FromResult(chat.Kind switch
        {
            ChatDestinationKind.Other => acl.CanSubscribe(user, destination),
            ChatDestinationKind.Presence => null,
            ChatDestinationKind.Conversation =>
                (role == UserRole.Admin && chat.AdminId == user.UserId) || (role == UserRole.Client && chat.ClientId == user.UserId)
                    ? null : "access denied: not a party of this conversation",
            ChatDestinationKind.AdminConversations =>
                role == UserRole.Admin && chat.AdminId == user.UserId ? null : "access denied: only that admin may subscribe to all of its conversations",
            ChatDestinationKind.Typing or ChatDestinationKind.Seen =>
                chat.UserId == user.UserId ? null : "access denied: only the user may subscribe to its own notices",
            ChatDestinationKind.WildcardOverChat => "access denied: wildcards may not span chat destinations",
            _ => "access denied: malformed chat destination",
        });
    }

    public ValueTask<string?> CanSendAsync(BrokerPrincipal user, Destination destination)
    {
        if (SendRules.Check(destination) is { } refused) return ValueTask.FromResult<string?>(refused);
        var chat = ChatDestination.Of(destination);
        var userId = user.UserId;
        return chat.Kind switch
        {
            ChatDestinationKind.Other => ValueTask.FromResult(acl.CanSend(user, destination)),
            ChatDestinationKind.Conversation => chat.AdminId == userId || chat.ClientId == userId
                ? CheckedAsync(ConversationPartiesAsync(chat.AdminId!, chat.ClientId!, userId))
                : Refuse("sender not a party of the conversation"),
            ChatDestinationKind.Typing => chat.UserId == userId ? Refuse("cannot send to yourself") : CheckedAsync(TypingPartiesAsync(userId, chat.UserId!)),
            ChatDestinationKind.Seen => chat.UserId == userId ? Refuse("cannot send to yourself") : ValueTask.FromResult<string?>(null),
            ChatDestinationKind.Presence => Refuse("presence is published by the broker only"),
            ChatDestinationKind.AdminConversations or ChatDestinationKind.WildcardOverChat => Refuse("cannot send to a wildcard destination"),
            _ => Refuse("malformed chat destination"),
        };
    }

    private static ValueTask<string?> Refuse(string reason) => ValueTask.FromResult<string?>("could-not-send-message: " + reason);

    // The users table answers; while the database is down the SEND is refused clearly, never left unanswered.
    private static async ValueTask<string?> CheckedAsync(ValueTask<string?> check)
    {
        try
        {
            return await check is { } problem ? "could-not-send-message: " + problem : null;
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or System.Data.Common.DbException)
        {
            return "could-not-send-message: storage unavailable";
        }
    }

    /// <summary>null when both users exist, are live and sit in the right slots of the conversation; else the reason.</summary>
    private async ValueTask<string?> ConversationPartiesAsync(string adminId, string clientId, string senderId)
    {
        var receiverId = senderId == adminId ? clientId : adminId;
        var sender = await users.FindAsync(senderId);
        if (sender is null) return "sender unknown";
        if (sender.IsDeleted) return "sender deleted";
        var receiver = await users.FindAsync(receiverId);
        if (receiver is null) return "receiver unknown";
        if (receiver.IsDeleted) return "receiver deleted";
        var admin = senderId == adminId ? sender : receiver;
        var client = senderId == adminId ? receiver : sender;
        if (admin.Role != UserRole.Admin) return $"{adminId} is not an administrator";
        if (client.Role != UserRole.Client) return $"{clientId} is not a customer";
        return null;
    }

    /// <summary>null when both users are live and one is an administrator, the other a customer; else the reason.</summary>
    private async ValueTask<string?> TypingPartiesAsync(string senderId, string otherId)
    {
        var sender = await users.FindAsync(senderId);
        var other = await users.FindAsync(otherId);
        return sender is null ? "sender unknown" : sender.IsDeleted ? "sender deleted"
            : other is null ? "receiver unknown" : other.IsDeleted ? "receiver deleted"
            : ConversationBetween(sender, other) is null ? "typing only between a customer and an administrator" : null;
    }

    /// <summary>The conversation two users would have, or null when the roles do not fit (admin-to-admin, client-to-client).</summary>
    public static (string AdminId, string ClientId)? ConversationBetween(UserRecord a, UserRecord b) => (a.Role, b.Role) switch
    {
        (UserRole.Admin, UserRole.Client) => (a.Id, b.Id),
        (UserRole.Client, UserRole.Admin) => (b.Id, a.Id),
        _ => null,
    };

    private static UserRole? RoleOf(BrokerPrincipal user) => UserRoles.TryParse(user.Role, out var role) ? role : null;
}
