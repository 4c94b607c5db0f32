using WsBroker.Broker.Routing;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>Stores a chat message and, once it is committed, publishes it to both parties; within one administrator's
/// conversations the ids increase in the order of the commits, and the messages are published in that order.</summary>
public interface IChatAppender
{
    /// <summary>Completes with the message's id once it is committed, or with the original id when the sender's
    /// client-msg-id was stored before (no second row, no second delivery). Fails with
    /// <see cref="MessageRejectedException"/> (the store will not take it; may be thrown at once) or
    /// <see cref="PersistenceUnavailableException"/> (not stored: the client may resend).</summary>
    Task<long> AppendAsync(ChatMessageDraft draft);
}

/// <summary>One node: this node's store takes the id and commits (docs/design.md §3 "Deliver after commit").</summary>
public sealed class LocalChatAppender(IMessageStore messages, MessageIdGenerator ids, IBackplane backplane, ChatDeliveryTracker delivery) : IChatAppender
{
    public Task<long> AppendAsync(ChatMessageDraft draft) => AppendAsync(draft, ids.Next);

    /// <summary>Appends with ids from <paramref name="allocateId"/>; throws <see cref="MessageRejectedException"/> at once
    /// for a message the store refuses whatever its id. <paramref name="publishDuplicate"/>: when the client-msg-id turns
    /// out to be stored already, publish it again under its original id, in this append's place in the id order (a cluster
    /// owner taking over a request its dead predecessor committed but may not have published).</summary>
    internal Task<long> AppendAsync(ChatMessageDraft draft, Func<long> allocateId, bool publishDuplicate = false)
    {
        var timestamp = draft.SentAt.ToUnixTimeMilliseconds();
        // Delivered after the commit, in id order: the store calls `settled` from its one writer in id order once the batch
        // is committed; only then do both parties get the message. What a user has seen is in history.
        var append = messages.Append(draft, allocateId, (id, error) =>
        {
            if (error is DuplicateMessageException duplicate && publishDuplicate) id = duplicate.OriginalId;
            else if (error is not null) return;
            delivery.Sent(id, draft.SenderId);
            backplane.Publish(ChatMessages.Build(id, draft.AdminId, draft.ClientId, draft.SenderId, draft.ReceiverId, draft.Body, timestamp, draft.ClientMsgId));
        });
        return CommittedAsync(append);
    }

    private static async Task<long> CommittedAsync(PendingAppend append)
    {
        try
        {
            await append.Committed.ConfigureAwait(false);
            return append.Id;
        }
        catch (DuplicateMessageException ex)
        {
            return ex.OriginalId;                                  // stored before under the same client-msg-id
        }
    }
}
