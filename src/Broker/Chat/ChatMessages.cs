using System.Globalization;
using WsBroker.Broker.Routing;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>The one shape of a chat MESSAGE, live (after its commit) or replayed: <c>sender</c>, <c>receiver</c>,
/// <c>timestamp</c>, <c>content-type</c> and, when the SEND had one, <c>client-msg-id</c>.</summary>
internal static class ChatMessages
{
    public const string TextPlain = "text/plain;charset=utf-8";

    public static SharedMessage Build(long id, string adminId, string clientId, string senderId, string receiverId, ReadOnlyMemory<byte> body,
        long timestamp, string? clientMsgId)
    {
        List<KeyValuePair<string, string>> headers =
        [
            new("sender", senderId),
            new("receiver", receiverId),
            new("timestamp", timestamp.ToString(CultureInfo.InvariantCulture)),
            new("content-type", TextPlain),
        ];
        if (clientMsgId is not null) headers.Add(new("client-msg-id", clientMsgId));
        return SharedMessage.Create(id, ChatDestination.ConversationOf(adminId, clientId), headers, body, senderId, receiverId, timestamp);
    }

    public static SharedMessage Build(ChatMessage stored) =>
        Build(stored.Id, stored.AdminId, stored.ClientId, stored.SenderId, stored.ReceiverId, System.Text.Encoding.UTF8.GetBytes(stored.Body),
            stored.SentAt.ToUnixTimeMilliseconds(), stored.ClientMsgId);
}
