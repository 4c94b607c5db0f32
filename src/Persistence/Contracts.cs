namespace WsBroker.Persistence;

/// <summary>Role of a synced user.</summary>
public enum UserRole
{
    Client = 0,
    Admin = 1,
}

/// <summary>A user as kept in the <c>users</c> table. <see cref="DeletedAt"/> is set for a soft-deleted user.</summary>
public sealed record UserRecord(string Id, string Name, UserRole Role, long Version, DateTimeOffset? DeletedAt, DateTimeOffset UpdatedAt)
{
    public bool IsDeleted => DeletedAt is not null;
}

/// <summary>How an upsert or delete ended.</summary>
public enum UserChangeOutcome
{
    /// <summary>The row was inserted or changed.</summary>
    Applied,
    /// <summary>The stored version was newer or equal: nothing changed (redelivery, reordering).</summary>
    Stale,
}

/// <summary>Raised after a user row changed.</summary>
public sealed record UserChange(UserRecord User, bool Deleted);

/// <summary>The users table: upsert with version check, soft delete, cached lookup.</summary>
public interface IUserStore
{
    /// <summary>Inserts or updates a user when <paramref name="version"/> is newer than the stored one (a deleted user
    /// is revived only by a newer version).</summary>
    Task<UserChangeOutcome> UpsertAsync(string id, string name, UserRole role, long version, DateTimeOffset occurredAt, CancellationToken cancellationToken = default);

    /// <summary>Soft-deletes a user when <paramref name="version"/> is newer than the stored one. An unknown user gets a
    /// tombstone row, so that an older create arriving later does not revive it.</summary>
    Task<UserChangeOutcome> DeleteAsync(string id, long version, DateTimeOffset occurredAt, CancellationToken cancellationToken = default);

    /// <summary>Looks up a user (including deleted ones) from an in-memory cache invalidated on every change made through
    /// this store. Returns null for an unknown id.</summary>
    ValueTask<UserRecord?> FindAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Looks up several users at once (including deleted ones): the cached ones from memory, the rest with one
    /// query per 500 ids. Unknown ids are left out of the answer.</summary>
    async Task<IReadOnlyDictionary<string, UserRecord>> FindManyAsync(IReadOnlyCollection<string> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var found = new Dictionary<string, UserRecord>(StringComparer.Ordinal);
        foreach (var id in ids)
        {
            if (await FindAsync(id, cancellationToken).ConfigureAwait(false) is { } user) found[id] = user;
        }
        return found;
    }

    /// <summary>All users that are not deleted, ordered by id.</summary>
    Task<IReadOnlyList<UserRecord>> ListAsync(UserRole? role = null, CancellationToken cancellationToken = default);

    /// <summary>Raised (synchronously, after the commit) when a user was applied; handlers must not block.</summary>
    event Action<UserChange>? Changed;
}

/// <summary>A stored chat message. <see cref="Id"/> is broker-assigned (time-ordered snowflake); <see cref="ClientMsgId"/>
/// is the sender's id for it, if it gave one; <see cref="DeliveredAt"/> is when the receiver's session first had it.</summary>
public sealed record ChatMessage(long Id, string AdminId, string ClientId, string SenderId, string ReceiverId, string Body,
    DateTimeOffset SentAt, bool Seen = false, DateTimeOffset? SeenAt = null, string? ClientMsgId = null, DateTimeOffset? DeliveredAt = null);

/// <summary>How a mark-seen ended.</summary>
public enum SeenOutcome
{
    /// <summary>At least one message was marked seen now.</summary>
    Marked,
    /// <summary>Everything named was already seen: nothing changed.</summary>
    AlreadySeen,
    /// <summary>No such message (or none in that conversation up to the id).</summary>
    NotFound,
    /// <summary>The reader is not the receiver of the message.</summary>
    NotReceiver,
    /// <summary>The message was not sent by the sender the reader named: nothing changed.</summary>
    NotSender,
}

/// <summary>Result of a mark-seen: the outcome, the message ids marked now (ascending) and the time stored.</summary>
public sealed record SeenResult(SeenOutcome Outcome, IReadOnlyList<long> MarkedIds, DateTimeOffset SeenAt, string? SenderId);

/// <summary>One conversation as seen from one side: the last message and how many are unread for the viewer.</summary>
public sealed record ConversationSummary(string AdminId, string ClientId, ChatMessage? LastMessage, int UnreadCount);

/// <summary>A committed message to one user that this user has not seen: its conversation and id.</summary>
public sealed record UnreadMessage(string AdminId, string ClientId, long Id);

/// <summary>Chat messages: write-behind appends with group commit, read receipts, history, summaries.</summary>
public interface IMessageStore
{
    /// <summary>Gives the message its id and queues it for the next group commit, in one synchronous step that never waits
    /// on the database: under one lock of the store it calls <paramref name="allocateId"/> once, registers the id (history
    /// pages and replays stop short of it until it is settled) and queues the message. Ids are therefore registered in the
    /// order they are taken, and no newer id is committed while an older one is unknown to the store.
    /// <paramref name="allocateId"/> runs under that lock: it must be quick and must not call the store.
    /// <para>Throws <see cref="MessageRejectedException"/> at once, before any id is taken, for a draft the store would
    /// never store (ids not 1..64 characters: <see cref="MessageRejection.InvalidParty"/>; body over
    /// <c>Storage:MaxBodyBytes</c> or not UTF-8; a malformed client-msg-id: <see cref="MessageRejection.InvalidClientMsgId"/>),
    /// and after taking it for an id that is not positive or already queued.
    /// Whether the parties exist and may talk is not checked here: that is the caller's rule.</para>
    /// <para>Idempotence: when a draft with the same <see cref="ChatMessageDraft.SenderId"/> and
    /// <see cref="ChatMessageDraft.ClientMsgId"/> is still queued, that append is returned with
    /// <see cref="PendingAppend.Duplicate"/> set: no id is taken and <paramref name="settled"/> is not called for it. One
    /// already committed is for the caller to find first (<see cref="FindByClientMsgIdAsync"/>); one committed in between
    /// fails this append's commit with <see cref="DuplicateMessageException"/> carrying the stored id, and the rest of its
    /// batch is stored.</para>
    /// <para>Everything else arrives through <see cref="PendingAppend.Committed"/>: a queue that is full or a store that is
    /// shutting down fail it with <see cref="PersistenceUnavailableException"/>, as does a database unreachable
    /// for longer than the write timeout; a row the database refuses fails it with <see cref="MessageRejectedException"/>
    /// (<see cref="MessageRejection.RefusedByDatabase"/>).</para>
    /// <para><paramref name="settled"/>, when given, is called exactly once for every append that took an id (also those
    /// thrown or failed at once after taking it), with null once the message is committed or with the exception it failed
    /// with, before <see cref="PendingAppend.Committed"/> completes. Calls are in the order the ids were taken, one at a
    /// time, never on the caller's thread inside <see cref="Append"/>: by the store's writer after each batch, or (for an
    /// append failed at once, and at shutdown) by a pool thread or the disposer under the same lock. It must be quick and
    /// must not wait on the store; an exception it throws is logged and ignored.</para></summary>
    PendingAppend Append(ChatMessageDraft draft, Func<long> allocateId, Action<long, Exception?>? settled = null);

    /// <summary>The committed message <paramref name="senderId"/> sent with <paramref name="clientMsgId"/>, or null. Throws
    /// <see cref="MessageRejectedException"/> (<see cref="MessageRejection.InvalidClientMsgId"/>) for a malformed id.</summary>
    Task<ChatMessage?> FindByClientMsgIdAsync(string senderId, string clientMsgId, CancellationToken ct = default);

    /// <summary>The highest message id committed in any conversation of <paramref name="adminId"/>, 0 when none: where a
    /// node that takes over the conversations of an administrator in a cluster must continue the ids from.</summary>
    Task<long> LastIdAsync(string adminId, CancellationToken ct = default);

    /// <summary>Committed messages with id &gt; <paramref name="afterId"/> of one conversation (or, with
    /// <paramref name="clientId"/> null, of every conversation of <paramref name="adminId"/>), oldest first, at most
    /// <paramref name="limit"/> (1..10000). Stops short of the oldest message of that scope still queued in this store, so a
    /// reader resuming from the last id returned never skips a message committed later with a smaller id.</summary>
    Task<IReadOnlyList<ChatMessage>> GetAfterAsync(string adminId, string? clientId, long afterId, int limit, CancellationToken ct = default);

    /// <summary>Stores <c>delivered_at</c> once on the committed messages among <paramref name="messageIds"/> (at most 1000)
    /// whose receiver is <paramref name="receiverId"/> and that have none yet; returns the ids changed now, ascending (so the
    /// sender is told once). Unknown, foreign and already delivered ids are ignored.</summary>
    Task<IReadOnlyList<long>> MarkDeliveredAsync(IReadOnlyList<long> messageIds, string receiverId, DateTimeOffset deliveredAt, CancellationToken ct = default);

    /// <summary>Marks one message seen, only by its receiver, only once, and (with <paramref name="expectedSenderId"/>) only
    /// when that user sent it; otherwise nothing changes and the outcome says why.</summary>
    Task<SeenResult> MarkSeenAsync(long messageId, string readerId, DateTimeOffset seenAt, string? expectedSenderId = null, CancellationToken cancellationToken = default);

    /// <summary>Marks every unseen message of the conversation received by <paramref name="readerId"/> with id &lt;= <paramref name="upToId"/> seen.</summary>
    Task<SeenResult> MarkSeenUpToAsync(string adminId, string clientId, long upToId, string readerId, DateTimeOffset seenAt, CancellationToken cancellationToken = default);

    /// <summary>Finds one message by id (committed messages only).</summary>
    Task<ChatMessage?> FindAsync(long messageId, CancellationToken cancellationToken = default);

    /// <summary>A keyset page of a conversation, newest first: messages with id &lt; <paramref name="beforeId"/> (all when null);
    /// <paramref name="limit"/> must be 1..100.</summary>
    Task<IReadOnlyList<ChatMessage>> GetPageAsync(string adminId, string clientId, long? beforeId, int limit, CancellationToken cancellationToken = default);

    /// <summary>Every conversation <paramref name="userId"/> takes part in, with the last message and the number of messages
    /// received by <paramref name="userId"/> not yet seen, newest conversation first.</summary>
    Task<IReadOnlyList<ConversationSummary>> GetConversationsAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>The ids of every committed message received by <paramref name="userId"/> and not seen yet, with their
    /// conversations (a live inbox keeps the unread messages by id, so a read receipt counted twice changes nothing).</summary>
    Task<IReadOnlyList<UnreadMessage>> GetUnreadAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>Messages waiting in the write-behind queue (for metrics).</summary>
    int QueueDepth { get; }
}

/// <summary>The database could not take the write in time; nothing was committed for this message. Messages are fixed
/// texts, never a driver's; the driver's exception, if any, is the inner exception (for logs).</summary>
public sealed class PersistenceUnavailableException : Exception
{
    public PersistenceUnavailableException() : base("storage unavailable") { }
    public PersistenceUnavailableException(string message) : base(message) { }
    public PersistenceUnavailableException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>Which database backs the stores.</summary>
public enum StorageProvider
{
    Sqlite,
    MySql,
}

/// <summary>Bound from configuration section <c>Storage</c>; connection strings from <c>ConnectionStrings:Sqlite</c> / <c>ConnectionStrings:MySql</c>.</summary>
public sealed class PersistenceOptions
{
    public StorageProvider Provider { get; set; } = StorageProvider.Sqlite;
    public string ConnectionString { get; set; } = "Data Source=data/wsbroker.db";
    /// <summary>Most messages in one multi-row INSERT.</summary>
    public int BatchSize { get; set; } = 256;
    /// <summary>How long the writer waits for more messages after the first one of a batch.</summary>
    public int BatchDelayMs { get; set; } = 2;
    /// <summary>Most messages waiting in the write-behind queue; beyond it appends fail at once.</summary>
    public int QueueCapacity { get; set; } = 10_000;
    /// <summary>Longest a message may wait for its commit (database down) before its append fails.</summary>
    public int WriteTimeoutMs { get; set; } = 5_000;
    /// <summary>Largest chat body accepted, in UTF-8 bytes.</summary>
    public int MaxBodyBytes { get; set; } = 65_536;
}
