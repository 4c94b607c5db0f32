using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>
/// Who may use which chat destination (DESIGN.md §3 "Destinations"). Pure rules over the authenticated user's id and role:
/// the user table checks (exists, not deleted) happen in <see cref="ChatSendHandler"/> because they need the store.
/// </summary>
internal static class ChatAccess
{
    /// <summary>null when <paramref name="userId"/> (with <paramref name="role"/>) may SUBSCRIBE, else the ERROR message.</summary>
    public static string? CanSubscribe(string userId, UserRole? role, string destination)
    {
        var chat = ChatDestination.Parse(destination);
        return chat.Kind switch
        {
            ChatDestinationKind.Other or ChatDestinationKind.Presence => null,
            ChatDestinationKind.Conversation =>
                (role == UserRole.Admin && chat.AdminId == userId) || (role == UserRole.Client && chat.ClientId == userId)
                    ? null : "access denied: not a party of this conversation",
            ChatDestinationKind.AdminConversations =>
                role == UserRole.Admin && chat.AdminId == userId ? null : "access denied: only that admin may subscribe to all of its conversations",
            ChatDestinationKind.Typing or ChatDestinationKind.Seen =>
                chat.UserId == userId ? null : "access denied: only the user may subscribe to its own notices",
            ChatDestinationKind.WildcardOverChat => "access denied: wildcards may not span chat destinations",
            _ => "access denied: malformed chat destination",
        };
    }

    /// <summary>null when the SEND may proceed to the chat handler (or general routing), else the business rejection.</summary>
    public static string? CanSend(string userId, UserRole? role, string destination)
    {
        var chat = ChatDestination.Parse(destination);
        return chat.Kind switch
        {
            ChatDestinationKind.Other => null,
            ChatDestinationKind.Conversation => chat.AdminId == userId || chat.ClientId == userId
                ? null : "could-not-send-message: sender not a party of the conversation",
            ChatDestinationKind.Typing or ChatDestinationKind.Seen => chat.UserId == userId
                ? "could-not-send-message: cannot send to yourself" : null,
            ChatDestinationKind.Presence => "could-not-send-message: presence is published by the broker only",
            ChatDestinationKind.AdminConversations or ChatDestinationKind.WildcardOverChat => "could-not-send-message: cannot send to a wildcard destination",
            _ => "could-not-send-message: malformed chat destination",
        };
    }

    /// <summary>Parses the <c>role</c> claim.</summary>
    public static UserRole? ParseRole(string? role) => role switch
    {
        "admin" => UserRole.Admin,
        "client" => UserRole.Client,
        _ => null,
    };

    /// <summary>The conversation two users would have, or null when the roles do not fit (admin-to-admin, client-to-client).</summary>
    public static (string AdminId, string ClientId)? ConversationBetween(UserRecord a, UserRecord b) => (a.Role, b.Role) switch
    {
        (UserRole.Admin, UserRole.Client) => (a.Id, b.Id),
        (UserRole.Client, UserRole.Admin) => (b.Id, a.Id),
        _ => null,
    };
}
