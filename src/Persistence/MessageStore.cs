using System.Text.Unicode;
using Dapper;
using Microsoft.Extensions.Logging;

namespace WsBroker.Persistence;

/// <summary>
/// Chat messages: appends go through the write-behind <see cref="AppendQueue"/> (ids registered and queued under one
/// lock, group commit, <c>settled</c> callbacks in id order); history pages and replays stop short of the appends it has
/// not decided yet (see <see cref="AppendQueue.Horizon"/>), and read receipts wait for the commit of what they mark.
/// The store checks only the shape of a message (ids, body size and encoding, client-msg-id); who may write to whom is the
/// caller's rule.
/// </summary>
internal sealed class MessageStore : IMessageStore, IAsyncDisposable
{
    private const string Columns = "id AS Id, admin_id AS AdminId, client_id AS ClientId, sender_id AS SenderId, receiver_id AS ReceiverId, body AS Body, sent_at AS SentAt, seen AS Seen, seen_at AS SeenAt, client_msg_id AS ClientMsgId, delivered_at AS DeliveredAt";
    private const int MaxClientMsgIdLength = 64;
    private const int MaxReplay = 10_000;
    private const int MaxDeliveredIds = 1_000;
    private readonly SqlDialect _dialect;
    private readonly PersistenceOptions _options;
    private readonly StoreGate _gate;
    private readonly AppendQueue _appends;

    public MessageStore(SqlDialect dialect, PersistenceOptions options, StoreGate gate, ILogger logger)
    {
        _dialect = dialect;
        _options = options;
        _gate = gate;
        _appends = new AppendQueue(dialect, options, logger);
    }

    public int QueueDepth => _appends.Depth;

    /// <summary>Raised after every commit with the batch size and the commit duration.</summary>
    public event Action<int, TimeSpan>? Committed
    {
        add => _appends.Committed += value;
        remove => _appends.Committed -= value;
    }

    public PendingAppend Append(ChatMessageDraft draft, Func<long> allocateId, Action<long, Exception?>? settled = null)
    {
        ArgumentNullException.ThrowIfNull(draft);
        ArgumentNullException.ThrowIfNull(allocateId);
        _gate.ThrowIfClosed();
        if (Check(draft, _options.MaxBodyBytes) is { } rejection) throw new MessageRejectedException(rejection);
        return _appends.Append(draft, allocateId, settled);
    }

    /// <summary>Why the store would refuse <paramref name="draft"/> whatever its id, or null.</summary>
    private static MessageRejection? Check(ChatMessageDraft draft, int maxBodyBytes)
    {
        if (!IsId(draft.AdminId) || !IsId(draft.ClientId) || !IsId(draft.SenderId) || !IsId(draft.ReceiverId)) return MessageRejection.InvalidParty;
        if (draft.ClientMsgId is not null && !IsClientMsgId(draft.ClientMsgId)) return MessageRejection.InvalidClientMsgId;
        if (draft.Body.Length > maxBodyBytes) return MessageRejection.BodyTooLarge;
        if (!Utf8.IsValid(draft.Body.Span)) return MessageRejection.BodyNotUtf8;   // stored as text: it must decode losslessly
        return null;

        static bool IsId(string? value) => !string.IsNullOrEmpty(value) && value.Length <= 64;
    }

    private static bool IsClientMsgId(string value) =>
        value.Length is > 0 and <= MaxClientMsgIdLength && !value.AsSpan().ContainsAnyExcept(s_clientMsgIdChars);

    private static readonly System.Buffers.SearchValues<char> s_clientMsgIdChars =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");

    // ---- reads and read receipts --------------------------------------------------------------------------------------

    public async Task<SeenResult> MarkSeenAsync(long messageId, string readerId, DateTimeOffset seenAt, string? expectedSenderId = null, CancellationToken cancellationToken = default)
    {
        _gate.ThrowIfClosed();
        await _appends.FlushAsync(p => p.Id == messageId).ConfigureAwait(false);      // it may have been delivered before its commit
        var at = seenAt.ToUnixTimeMilliseconds();
        using var writing = await _dialect.EnterWriteAsync(cancellationToken).ConfigureAwait(false);
        await using var connection = _dialect.CreateConnection();
        var changed = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE messages SET seen = 1, seen_at = @at WHERE id = @messageId AND receiver_id = @readerId AND seen = 0"
            + (expectedSenderId is null ? "" : " AND sender_id = @expectedSenderId"),
            new { at, messageId, readerId, expectedSenderId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        var message = await FindAsync(messageId, cancellationToken).ConfigureAwait(false);
        if (message is null) return new SeenResult(SeenOutcome.NotFound, [], seenAt, null);
        if (message.ReceiverId != readerId) return new SeenResult(SeenOutcome.NotReceiver, [], seenAt, message.SenderId);
        if (expectedSenderId is not null && message.SenderId != expectedSenderId) return new SeenResult(SeenOutcome.NotSender, [], seenAt, message.SenderId);
        return changed == 1
            ? new SeenResult(SeenOutcome.Marked, [messageId], seenAt, message.SenderId)
            : new SeenResult(SeenOutcome.AlreadySeen, [], message.SeenAt ?? seenAt, message.SenderId);
    }

    public async Task<SeenResult> MarkSeenUpToAsync(string adminId, string clientId, long upToId, string readerId, DateTimeOffset seenAt, CancellationToken cancellationToken = default)
    {
        _gate.ThrowIfClosed();
        if (readerId != adminId && readerId != clientId) return new SeenResult(SeenOutcome.NotReceiver, [], seenAt, null);
        var sender = readerId == adminId ? clientId : adminId;
        await _appends.FlushAsync(p => p.Draft.AdminId == adminId && p.Draft.ClientId == clientId && p.Id <= upToId).ConfigureAwait(false);
        var at = seenAt.ToUnixTimeMilliseconds();
        var args = new { adminId, clientId, upToId, readerId, at };
        using var writing = await _dialect.EnterWriteAsync(cancellationToken).ConfigureAwait(false);
        await using var connection = _dialect.CreateConnection();
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var ids = (await connection.QueryAsync<long>(new CommandDefinition(
            "SELECT id FROM messages WHERE admin_id = @adminId AND client_id = @clientId AND receiver_id = @readerId AND seen = 0 AND id <= @upToId ORDER BY id" + _dialect.ForUpdate,
            args, tx, cancellationToken: cancellationToken)).ConfigureAwait(false)).ToList();
        if (ids.Count > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE messages SET seen = 1, seen_at = @at WHERE admin_id = @adminId AND client_id = @clientId AND receiver_id = @readerId AND seen = 0 AND id <= @upToId",
                args, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new SeenResult(SeenOutcome.Marked, ids, seenAt, sender);
        }
        var any = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM messages WHERE admin_id = @adminId AND client_id = @clientId AND receiver_id = @readerId AND id <= @upToId",
            args, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return new SeenResult(any > 0 ? SeenOutcome.AlreadySeen : SeenOutcome.NotFound, [], seenAt, sender);
    }

    public async Task<ChatMessage?> FindAsync(long messageId, CancellationToken cancellationToken = default)
    {
        _gate.ThrowIfClosed();
        await using var connection = _dialect.CreateConnection();
        var row = await connection.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(
            $"SELECT {Columns} FROM messages WHERE id = @messageId", new { messageId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return row?.ToMessage();
    }

    public async Task<IReadOnlyList<ChatMessage>> GetPageAsync(string adminId, string clientId, long? beforeId, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, 100);
        _gate.ThrowIfClosed();
        var horizon = _appends.Horizon(adminId, clientId);
        var before = beforeId is null ? horizon : horizon is null ? beforeId : Math.Min(beforeId.Value, horizon.Value);
        await using var connection = _dialect.CreateConnection();
        var rows = await connection.QueryAsync<MessageRow>(new CommandDefinition(
            $"SELECT {Columns} FROM messages WHERE admin_id = @adminId AND client_id = @clientId"
            + (before is null ? "" : " AND id < @before") + " ORDER BY id DESC LIMIT @limit",
            new { adminId, clientId, before, limit }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.Select(r => r.ToMessage()).ToList();
    }

    public async Task<IReadOnlyList<ChatMessage>> GetAfterAsync(string adminId, string? clientId, long afterId, int limit, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(adminId);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxReplay);
        _gate.ThrowIfClosed();
        var before = _appends.Horizon(adminId, clientId);
        await using var connection = _dialect.CreateConnection();
        var rows = await connection.QueryAsync<MessageRow>(new CommandDefinition(
            $"SELECT {Columns} FROM messages WHERE admin_id = @adminId"
            + (clientId is null ? "" : " AND client_id = @clientId")
            + " AND id > @afterId" + (before is null ? "" : " AND id < @before") + " ORDER BY id LIMIT @limit",
            new { adminId, clientId, afterId, before, limit }, cancellationToken: ct)).ConfigureAwait(false);
        return rows.Select(r => r.ToMessage()).ToList();
    }

    public async Task<long> LastIdAsync(string adminId, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(adminId);
        _gate.ThrowIfClosed();
        await using var connection = _dialect.CreateConnection();
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COALESCE(MAX(id), 0) FROM messages WHERE admin_id = @adminId", new { adminId }, cancellationToken: ct)).ConfigureAwait(false);
    }

    public async Task<ChatMessage?> FindByClientMsgIdAsync(string senderId, string clientMsgId, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(senderId);
        ArgumentNullException.ThrowIfNull(clientMsgId);
        if (!IsClientMsgId(clientMsgId)) throw new MessageRejectedException(MessageRejection.InvalidClientMsgId);
        _gate.ThrowIfClosed();
        await using var connection = _dialect.CreateConnection();
        var row = await connection.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(
            $"SELECT {Columns} FROM messages WHERE sender_id = @senderId AND client_msg_id = @clientMsgId",
            new { senderId, clientMsgId }, cancellationToken: ct)).ConfigureAwait(false);
        return row?.ToMessage();
    }

    public async Task<IReadOnlyList<long>> MarkDeliveredAsync(IReadOnlyList<long> messageIds, string receiverId, DateTimeOffset deliveredAt, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(messageIds);
        ArgumentNullException.ThrowIfNull(receiverId);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(messageIds.Count, MaxDeliveredIds);
        _gate.ThrowIfClosed();
        if (messageIds.Count == 0) return [];
        var args = new { ids = messageIds.Distinct().ToArray(), receiverId, at = deliveredAt.ToUnixTimeMilliseconds() };
        // One UPDATE for the whole batch; the locking SELECT before it (the write lock on SQLite, whose BeginTransaction is
        // IMMEDIATE; row locks on MySQL) says which rows it changes, so two racing calls never both report one id.
        using var writing = await _dialect.EnterWriteAsync(ct).ConfigureAwait(false);
        await using var connection = _dialect.CreateConnection();
        await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        var changed = (await connection.QueryAsync<long>(new CommandDefinition(
            "SELECT id FROM messages WHERE id IN @ids AND receiver_id = @receiverId AND delivered_at IS NULL ORDER BY id" + _dialect.ForUpdate,
            args, tx, cancellationToken: ct)).ConfigureAwait(false)).ToList();
        if (changed.Count > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE messages SET delivered_at = @at WHERE id IN @ids AND receiver_id = @receiverId AND delivered_at IS NULL",
                new { ids = changed, args.receiverId, args.at }, tx, cancellationToken: ct)).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return changed;
    }

    public async Task<IReadOnlyList<ConversationSummary>> GetConversationsAsync(string userId, CancellationToken cancellationToken = default)
    {
        _gate.ThrowIfClosed();
        await using var connection = _dialect.CreateConnection();
        var rows = await connection.QueryAsync<SummaryRow>(new CommandDefinition(
            $"""
            SELECT m.id AS Id, m.admin_id AS AdminId, m.client_id AS ClientId, m.sender_id AS SenderId, m.receiver_id AS ReceiverId,
              m.body AS Body, m.sent_at AS SentAt, m.seen AS Seen, m.seen_at AS SeenAt, m.client_msg_id AS ClientMsgId, m.delivered_at AS DeliveredAt,
              (SELECT COUNT(*) FROM messages u WHERE u.admin_id = m.admin_id AND u.client_id = m.client_id AND u.receiver_id = @userId AND u.seen = 0) AS Unread
            FROM messages m
            JOIN (SELECT admin_id, client_id, MAX(id) AS last_id FROM messages WHERE admin_id = @userId OR client_id = @userId GROUP BY admin_id, client_id) l
              ON m.id = l.last_id
            ORDER BY m.id DESC
            """, new { userId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.Select(r => new ConversationSummary(r.AdminId, r.ClientId, r.ToMessage(), (int)r.Unread)).ToList();
    }

    public async Task<IReadOnlyList<UnreadMessage>> GetUnreadAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        _gate.ThrowIfClosed();
        await using var connection = _dialect.CreateConnection();
        var rows = await connection.QueryAsync<UnreadMessage>(new CommandDefinition(
            "SELECT admin_id AS AdminId, client_id AS ClientId, id AS Id FROM messages WHERE receiver_id = @userId AND seen = 0 ORDER BY id",
            new { userId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.ToList();
    }

    public ValueTask DisposeAsync() => _appends.DisposeAsync();
}
