using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>Reads what one user's inbox is built from: the conversations with their last messages (the query of
/// <c>GET /api/contacts</c>), then the messages to the user not seen yet, then the peers' user rows (one query for those
/// not cached). Only committed messages: one committed later reaches the inbox as an event.</summary>
public class InboxLoader(IMessageStore messages, IUserStore users)
{
    public virtual async Task<InboxLoad> LoadAsync(string userId, CancellationToken cancellationToken)
    {
        // The conversations first: a message committed between the two reads is counted unread by the second and comes
        // as an event too (its id is above the conversation's last one), which counts it once (by id).
        var conversations = await messages.GetConversationsAsync(userId, cancellationToken).ConfigureAwait(false);
        var unread = await messages.GetUnreadAsync(userId, cancellationToken).ConfigureAwait(false);
        var peers = conversations.Select(c => PeerOf(c, userId)).ToHashSet(StringComparer.Ordinal);
        var rows = await users.FindManyAsync(peers, cancellationToken).ConfigureAwait(false);
        return new InboxLoad(conversations, unread, rows);
    }

    public static string PeerOf(ConversationSummary conversation, string userId) =>
        userId == conversation.AdminId ? conversation.ClientId : conversation.AdminId;
}
