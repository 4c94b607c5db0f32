using System.Globalization;
using System.Text.Json;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker.Chat;

/// <summary>
/// How the inboxes of a node hear the chat: two subscriptions of its own in the router, to every conversation
/// (<c>/topic/private-chat/*/*</c>) and every read receipt (<c>/topic/seen/*</c>), in place only while the node has an
/// inbox. They get what every local subscriber gets: committed chat messages (after their commit, in id order) and seen
/// notices, published here or received from the other nodes of a cluster (each node receives every message). A message
/// whose parties have no inbox here costs two dictionary lookups; the others are handed to the feed, never waited for.
/// </summary>
internal sealed class InboxTap(Func<string, bool> tracked, Action<object> post) : IMessageSink
{
    private static readonly byte[] s_seen = "{\"status\":\"seen\""u8.ToArray();
    private Subscription[]? _subscriptions;

    /// <summary>Puts the tap's subscriptions in <paramref name="router"/> (no-op when they are).</summary>
    public void Attach(TopicRouter router)
    {
        if (_subscriptions is not null) return;
        _subscriptions =
        [
            new Subscription(this, "$inbox-chat", Destination.Of(ChatDestination.ConversationPrefix + "*/*"), AckMode.Auto, 0),
            new Subscription(this, "$inbox-seen", Destination.Of(ChatDestination.SeenPrefix + "*"), AckMode.Auto, 0),
        ];
        foreach (var subscription in _subscriptions) router.Add(subscription);
    }

    /// <summary>Takes the tap's subscriptions out of <paramref name="router"/> (no-op when they are not in).</summary>
    public void Detach(TopicRouter router)
    {
        if (_subscriptions is null) return;
        foreach (var subscription in _subscriptions) router.Remove(subscription);
        _subscriptions = null;
    }

    public bool IsAttached => _subscriptions is not null;

    public DeliveryOutcome TryDeliver(Subscription subscription, SharedMessage message, bool replay = false)
    {
        if (message.Sender is not { } sender || message.Receiver is not { } receiver) return DeliveryOutcome.Queued;
        if (message.Destination.StartsWith(ChatDestination.ConversationPrefix, StringComparison.Ordinal))
        {
            if (tracked(sender) || tracked(receiver)) post(ChatMessage(message, sender, receiver));
        }
        // A notice on /topic/seen/{sender} is sent by the reader: a seen one changes the reader's unread count (a
        // delivered one changes nothing here).
        else if (tracked(sender) && message.Body.StartsWith(s_seen) && Seen(message, sender, receiver) is { } seen) post(seen);
        return DeliveryOutcome.Queued;
    }

    private static InboxMessage ChatMessage(SharedMessage message, string sender, string receiver)
    {
        var pair = message.Destination.AsSpan(ChatDestination.ConversationPrefix.Length);
        var slash = pair.IndexOf('/');
        return new InboxMessage(message.Id, pair[..slash].ToString(), pair[(slash + 1)..].ToString(), sender, receiver,
            InboxMessages.Preview(message.Body), message.Timestamp);
    }

    // {"status":"seen","reader":…,"seenAt":…,"messageIds":["…",…]} (ChatSendHandler)
    private static InboxSeen? Seen(SharedMessage message, string reader, string peer)
    {
        try
        {
            using var json = JsonDocument.Parse(message.BodyMemory);
            if (!json.RootElement.TryGetProperty("messageIds", out var ids) || ids.ValueKind != JsonValueKind.Array) return null;
            var list = new List<long>(ids.GetArrayLength());
            foreach (var id in ids.EnumerateArray())
            {
                if (id.ValueKind == JsonValueKind.String && long.TryParse(id.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var value)) list.Add(value);
            }
            return new InboxSeen(reader, peer, list);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public Task WhenDrained() => Task.CompletedTask;

    public bool IsStalled => false;
}
