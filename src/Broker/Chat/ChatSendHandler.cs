using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Sessions;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>
/// The support chat's SENDs, once <see cref="ChatAccessPolicy"/> has allowed them: conversation messages (delivered at
/// once to both parties, stored write-behind, receipted after the commit), read receipts (stored once, told to the
/// original sender) and typing notices (never stored, rate-limited per session). Rejections go to the sender's
/// <c>/user/queue/errors</c>.
/// </summary>
public sealed partial class ChatSendHandler : ISendHandler
{
    private readonly IUserStore _users;
    private readonly IMessageStore _messages;
    private readonly ChatOptions _options;
    private readonly ILogger<ChatSendHandler> _logger;
    private readonly IChatAppender _appender;
    private readonly ConcurrentDictionary<string, TokenBucket> _typingBuckets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TokenBucket> _messageBuckets = new(StringComparer.Ordinal);

    public ChatSendHandler(IUserStore users, IMessageStore messages, IChatAppender appender, IOptions<ChatOptions> options,
        SessionRegistry sessions, ILogger<ChatSendHandler> logger)
    {
        _users = users;
        _messages = messages;
        _appender = appender;
        _options = options.Value;
        _logger = logger;
        sessions.SessionEnded += s =>
        {
            _typingBuckets.TryRemove(s.SessionId, out _);
            _messageBuckets.TryRemove(s.SessionId, out _);
        };
    }

    public bool Handles(Destination destination) => ChatDestination.Of(destination).Kind
        is ChatDestinationKind.Conversation or ChatDestinationKind.Typing or ChatDestinationKind.Seen;

    public async ValueTask HandleAsync(SendContext context)
    {
        var chat = ChatDestination.Of(context.Destination);
        try
        {
            await (chat.Kind switch
            {
                ChatDestinationKind.Conversation => ConversationAsync(context, chat.AdminId!, chat.ClientId!),
                ChatDestinationKind.Typing => TypingAsync(context, chat.UserId!),
                _ => SeenAsync(context, chat.UserId!),
            });
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or System.Data.Common.DbException)
        {
            // The database is down and the read receipt could not be stored: a clear rejection, never a silent SEND and
            // never a closed connection.
            Log.StorageUnavailable(_logger, ex, context.Destination.Text);
            context.Reject("could-not-send-message: storage unavailable");
        }
    }

    // ---- chat messages ------------------------------------------------------------------------------------------------

    private async ValueTask ConversationAsync(SendContext context, string adminId, string clientId)
    {
        var senderId = context.User.UserId;
        var receiverId = senderId == adminId ? clientId : adminId;
        if (context.Body.IsEmpty)
        {
            context.Reject("could-not-send-message: empty message");
            return;
        }
        if (!_messageBuckets.GetOrAdd(context.SessionId, _ => new TokenBucket(_options.MessagesPerSecond, _options.MessageBurst)).TryTake())
        {
            context.Reject("could-not-send-message: rate limit");
            return;
        }
        var clientMsgId = context.Header("client-msg-id");
        if (clientMsgId is not null)
        {
            if (!IsClientMsgId(clientMsgId))
            {
                context.Reject("could-not-send-message: invalid client-msg-id");
                return;
            }
            // A resend of a message already stored: its original receipt and id, no second row, no second delivery.
            if (await _messages.FindByClientMsgIdAsync(senderId, clientMsgId) is { } stored)
            {
                context.Receipt(stored.Id);
                return;
            }
        }
        var body = context.CopyBody();                             // the one copy: shared by the delivery and the store
        // Delivered to both parties after the commit, in id order (IChatAppender); the sender's RECEIPT (with the id)
        // follows. A resend while the first is still in flight shares its commit (and its delivery): only the receipt is owed.
        Task<long> committed;
        try
        {
            committed = _appender.AppendAsync(new ChatMessageDraft(adminId, clientId, senderId, receiverId, body, DateTimeOffset.UtcNow, clientMsgId));
        }
        catch (MessageRejectedException ex)
        {
            context.Reject("could-not-send-message: " + ex.Message);
            return;
        }
        _ = ReceiptAfterCommitAsync(context, committed);
    }

    /// <summary>A client-msg-id: 1..64 characters of [A-Za-z0-9_-].</summary>
    private static bool IsClientMsgId(string id) =>
        id.Length is >= 1 and <= 64 && !id.AsSpan().ContainsAnyExcept(s_clientMsgIdChars);

    private static readonly System.Buffers.SearchValues<char> s_clientMsgIdChars =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");

    private async Task ReceiptAfterCommitAsync(SendContext context, Task<long> committed)
    {
        try
        {
            context.Receipt(await committed.ConfigureAwait(false));
        }
        catch (PersistenceUnavailableException ex)
        {
            Log.NotStored(_logger, ex, context.Destination.Text);
            context.Reject("could-not-send-message: storage unavailable, message not stored");
        }
        catch (MessageRejectedException ex)
        {
            Log.NotStored(_logger, ex, context.Destination.Text);
            context.Reject("could-not-send-message: " + ex.Message);
        }
        catch (Exception ex)
        {
            // Anything else (a driver error that is not an outage): the sender must still hear that it was not stored.
            Log.NotStored(_logger, ex, context.Destination.Text);
            context.Reject("could-not-send-message: not stored");
        }
    }

    // ---- typing -------------------------------------------------------------------------------------------------------

    private async ValueTask TypingAsync(SendContext context, string otherId)
    {
        var senderId = context.User.UserId;
        var bucket = _typingBuckets.GetOrAdd(context.SessionId, _ => new TokenBucket(_options.TypingPerSecond));
        if (!bucket.TryTake())
        {
            context.Reject("could-not-send-message: rate limit");
            return;
        }
        // The policy has checked both users; only the conversation they share is needed here.
        var sender = await _users.FindAsync(senderId);
        var other = await _users.FindAsync(otherId);
        if (sender is null || other is null || ChatAccessPolicy.ConversationBetween(sender, other) is not var (adminId, clientId))
        {
            context.Reject("could-not-send-message: typing only between a customer and an administrator");
            return;
        }
        var typing = ParseTyping(context.Body);
        var body = Json(w =>
        {
            w.WriteString("conversation", adminId + "/" + clientId);
            w.WriteString("from", senderId);
            w.WriteBoolean("typing", typing);
        });
        context.Deliver(context.NextMessageId(), context.Destination.Text,
            [new("sender", senderId), new("receiver", otherId), new("content-type", "application/json")], body, senderId, otherId);
        context.Receipt();
    }

    private static bool ParseTyping(in ReadOnlySequence<byte> body)
    {
        if (body.Length is 0 or > 1024) return true;
        try
        {
            using var json = JsonDocument.Parse(body);
            return !json.RootElement.TryGetProperty("typing", out var t) || t.ValueKind != JsonValueKind.False;
        }
        catch (JsonException)
        {
            return true;
        }
    }

    // ---- read receipts ------------------------------------------------------------------------------------------------

    private async ValueTask SeenAsync(SendContext context, string senderId)
    {
        var readerId = context.User.UserId;
        var now = DateTimeOffset.UtcNow;
        SeenResult result;
        long noticeId;
        if (long.TryParse(context.Header("message-id"), NumberStyles.None, CultureInfo.InvariantCulture, out var messageId))
        {
            result = await _messages.MarkSeenAsync(messageId, readerId, now, expectedSenderId: senderId);
            noticeId = messageId;
        }
        else if (long.TryParse(context.Header("up-to"), NumberStyles.None, CultureInfo.InvariantCulture, out var upTo))
        {
            var reader = await _users.FindAsync(readerId);
            var sender = await _users.FindAsync(senderId);
            var pair = reader is null || sender is null ? null : ChatAccessPolicy.ConversationBetween(reader, sender);
            if (pair is null)
            {
                context.Reject("could-not-send-message: no conversation with " + senderId);
                return;
            }
            result = await _messages.MarkSeenUpToAsync(pair.Value.AdminId, pair.Value.ClientId, upTo, readerId, now);
            noticeId = upTo;
        }
        else
        {
            context.Reject("could-not-send-message: a read receipt needs a message-id or up-to header");
            return;
        }
        switch (result.Outcome)
        {
            case SeenOutcome.NotFound:
                context.Reject("could-not-send-message: message unknown");
                return;
            case SeenOutcome.NotReceiver:
                context.Reject("could-not-send-message: only the receiver may mark a message seen");
                return;
            case SeenOutcome.NotSender:
                context.Reject($"could-not-send-message: the message was not sent by {senderId}");
                return;
            case SeenOutcome.AlreadySeen:
                context.Receipt();                                 // stored once: a repeat changes nothing and tells no one
                return;
        }
        var seenAt = result.SeenAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        var ids = result.MarkedIds;
        var body = Json(w =>
        {
            w.WriteString("status", "seen");
            w.WriteString("reader", readerId);
            w.WriteNumber("seenAt", result.SeenAt.ToUnixTimeMilliseconds());
            w.WriteStartArray("messageIds");
            foreach (var id in ids) w.WriteStringValue(id.ToString(CultureInfo.InvariantCulture));
            w.WriteEndArray();
        });
        var headers = new List<KeyValuePair<string, string>> { new("status", "seen"), new("reader", readerId), new("seen-at", seenAt), new("content-type", "application/json") };
        if (context.Header("up-to") is { } upToText && context.Header("message-id") is null) headers.Add(new("up-to", upToText));
        context.Deliver(noticeId, ChatDestination.SeenPrefix + senderId, headers, body, readerId, senderId);
        context.Receipt();
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            write(json);
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 600, Level = LogLevel.Warning, Message = "a chat message to {Destination} was not stored (not delivered either)")]
        public static partial void NotStored(ILogger logger, Exception exception, string destination);

        [LoggerMessage(EventId = 601, Level = LogLevel.Warning, Message = "SEND to {Destination} rejected: storage unavailable")]
        public static partial void StorageUnavailable(ILogger logger, Exception exception, string destination);
    }
}
