using System.Collections.Concurrent;
using System.Data.Common;
using System.Text;
using System.Text.Unicode;
using System.Threading.Channels;
using Dapper;
using Microsoft.Extensions.Logging;

namespace WsBroker.Persistence;

/// <summary>
/// Chat messages with write-behind and group commit: <see cref="Append"/> gives the message its id, registers it and
/// queues it (bounded) in one step under one lock, and returns the id with a task; one writer turns everything ready (up
/// to <c>BatchSize</c> messages, waiting at most <c>BatchDelayMs</c> for more) into one multi-row INSERT in one
/// transaction, then completes each task. The queue is in the order the ids were taken and the one writer commits in
/// queue order, so (ids taken in increasing order) no id becomes visible before an older one of this store. While the
/// database is unreachable the writer retries with back-off; a message that waited longer than <c>WriteTimeoutMs</c>, or
/// finds the queue full, fails with <see cref="PersistenceUnavailableException"/>. Retried batches skip ids already
/// stored, so nothing is stored twice.
/// Every append that took an id is also in <c>_line</c>, in the order the ids were taken. Deciding an append (committed or
/// failed) and settling it are two steps: settling happens strictly along that line, under one lock, so the callers'
/// <c>settled</c> callbacks run one at a time in id order, each before its <see cref="PendingAppend.Committed"/> completes
/// (an append without a callback completes as soon as it is decided).
/// The store checks only the shape of a message (ids, body size and encoding, client-msg-id); who may write to whom is the
/// caller's rule.
/// </summary>
internal sealed partial class MessageStore : IMessageStore, IAsyncDisposable
{
    private const string Columns = "id AS Id, admin_id AS AdminId, client_id AS ClientId, sender_id AS SenderId, receiver_id AS ReceiverId, body AS Body, sent_at AS SentAt, seen AS Seen, seen_at AS SeenAt, client_msg_id AS ClientMsgId, delivered_at AS DeliveredAt";
    private const int MaxClientMsgIdLength = 64;
    private const int MaxReplay = 10_000;
    private const int MaxDeliveredIds = 1_000;
    private readonly SqlDialect _dialect;
    private readonly PersistenceOptions _options;
    private readonly StoreGate _gate;
    private readonly ILogger _logger;
    private readonly Channel<Pending> _queue;
    private readonly ConcurrentDictionary<long, Pending> _pending = new();
    private readonly ConcurrentDictionary<(string SenderId, string ClientMsgId), Pending> _byClientMsgId = new();
    private readonly ConcurrentQueue<Pending> _line = new();
    private readonly Lock _appendLock = new();
    private readonly Lock _settleLock = new();
    private bool _draining;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _writer;
    private readonly ConcurrentDictionary<int, string> _insertSql = new();
    private int _disposed;

    public MessageStore(SqlDialect dialect, PersistenceOptions options, StoreGate gate, ILogger logger)
    {
        _dialect = dialect;
        _options = options;
        _gate = gate;
        _logger = logger;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writer = Task.Run(WriteLoopAsync);
    }

    public int QueueDepth => _pending.Count;

    /// <summary>Raised after every commit with the batch size and the commit duration.</summary>
    public event Action<int, TimeSpan>? Committed;

    public PendingAppend Append(ChatMessageDraft draft, Func<long> allocateId, Action<long, Exception?>? settled = null)
    {
        ArgumentNullException.ThrowIfNull(draft);
        ArgumentNullException.ThrowIfNull(allocateId);
        _gate.ThrowIfClosed();
        if (Check(draft, _options.MaxBodyBytes) is { } rejection) throw new MessageRejectedException(rejection);
        (string, string)? key = draft.ClientMsgId is { } clientMsgId ? (draft.SenderId, clientMsgId) : null;
        Pending pending;
        MessageRejectedException? thrown = null;
        // One lock from the id to the queue: ids are registered (history pages stop short of them, see Horizon), put in the
        // settle line and queued in the order they are taken, so a newer id is never committed while an older one is
        // unknown here, and settled calls follow id order.
        lock (_appendLock)
        {
            if (key is { } k && _byClientMsgId.TryGetValue(k, out var inFlight))
                return new PendingAppend(inFlight.Id, inFlight.Task, Duplicate: true);
            var id = allocateId();
            pending = new Pending(id, draft, key, settled, Environment.TickCount64);
            _line.Enqueue(pending);
            if (id <= 0) thrown = new MessageRejectedException(MessageRejection.InvalidId);
            else if (!_pending.TryAdd(id, pending)) thrown = new MessageRejectedException(MessageRejection.DuplicateId);
            else
            {
                pending.Registered = true;
                if (key is { } added) _byClientMsgId[added] = pending;
                if (Volatile.Read(ref _disposed) != 0)
                    Decide(pending, new PersistenceUnavailableException("storage unavailable: store is shutting down"));
                else if (!_queue.Writer.TryWrite(pending))              // FullMode.Wait: TryWrite fails when full
                    Decide(pending, new PersistenceUnavailableException("storage unavailable: write queue full"));
            }
            if (thrown is not null) Decide(pending, thrown);
        }
        // Failed at once: settled on a pool thread (never inside the caller's Append), after every older id.
        if (pending.IsDecided) ThreadPool.UnsafeQueueUserWorkItem(static store => store.Settle(), this, preferLocal: false);
        if (thrown is not null) throw thrown;
        return new PendingAppend(pending.Id, pending.Task);
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

    // ---- deciding and settling ------------------------------------------------------------------------------------------

    /// <summary>Records how an append ended (the first decision wins). An append without a settled callback completes now;
    /// one with a callback waits for <see cref="Settle"/>, which the decider must run (or schedule) afterwards.</summary>
    private void Decide(Pending pending, Exception? error)
    {
        if (pending.TryDecide(error) && pending.Settled is null) Finish(pending);
    }

    /// <summary>Settles the decided appends at the head of the line, in the order their ids were taken: the settled callback
    /// first, then the append leaves the registry and its task completes. One thread at a time.</summary>
    private void Settle()
    {
        lock (_settleLock)
        {
            if (_draining) return;                      // reached again from inside a callback: the loop below goes on
            _draining = true;
            try
            {
                while (_line.TryPeek(out var head) && head.IsDecided)
                {
                    _line.TryDequeue(out _);
                    if (head.Settled is { } settled)
                    {
                        try
                        {
                            settled(head.Id, head.Error);
                        }
                        catch (Exception ex)
                        {
                            Log.SettledFailed(_logger, ex, head.Id);
                        }
                    }
                    Finish(head);
                }
            }
            finally
            {
                _draining = false;
            }
        }
    }

    /// <summary>Takes a decided append out of the registries and completes its task. Idempotent.</summary>
    private void Finish(Pending pending)
    {
        if (!pending.Registered) return;                // thrown from Append: no registry entry, no task handed out
        if (pending.Key is { } key) _byClientMsgId.TryRemove(KeyValuePair.Create(key, pending));
        _pending.TryRemove(KeyValuePair.Create(pending.Id, pending));
        if (pending.Error is null) pending.Source.TrySetResult();
        else pending.Source.TrySetException(pending.Error);
    }

    // ---- the writer ---------------------------------------------------------------------------------------------------

    private async Task WriteLoopAsync()
    {
        var batch = new List<Pending>(_options.BatchSize);
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < _options.BatchSize && reader.TryRead(out var item)) batch.Add(item);
            if (batch.Count < _options.BatchSize && _options.BatchDelayMs > 0 && !_stopping.IsCancellationRequested)
            {
                // Group commit: give concurrent senders a moment to join this transaction.
                await Task.Delay(_options.BatchDelayMs).ConfigureAwait(false);
                while (batch.Count < _options.BatchSize && reader.TryRead(out var item)) batch.Add(item);
            }
            try
            {
                await CommitWithRetryAsync(batch).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Never let the one writer die: a message it cannot settle fails clearly instead of waiting for ever.
                Log.WriterError(_logger, ex, batch.Count);
                // A fixed text: the exception's own message (driver detail) is for the log above, never for a client.
                foreach (var pending in batch) Decide(pending, new PersistenceUnavailableException("storage unavailable: not stored after an unexpected error", ex));
                Settle();
            }
            batch.Clear();
        }
    }

    private async Task CommitWithRetryAsync(List<Pending> batch)
    {
        for (var attempt = 0; batch.Count > 0; attempt++)
        {
            ExpireOld(batch);
            if (batch.Count == 0) return;
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                await InsertAsync(batch).ConfigureAwait(false);
                var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
                foreach (var pending in batch) Decide(pending, null);
                Settle();
                Committed?.Invoke(batch.Count, elapsed);
                if (attempt > 0) Log.Resumed(_logger, batch.Count, attempt);
                return;
            }
            catch (Exception ex) when (_dialect.IsTransient(ex) || ex is DbException)
            {
                if (!_dialect.IsTransient(ex) && await IsReachableAsync().ConfigureAwait(false))
                {
                    // The database answers but refuses this batch: find the bad rows one by one, store the rest.
                    var left = await IsolateAsync(batch).ConfigureAwait(false);
                    Settle();
                    if (left.Count == 0) return;
                    // The database went away while isolating: what is left is not bad input, it goes back to retrying.
                    batch.Clear();
                    batch.AddRange(left);
                }
                if (attempt == 0) Log.Unavailable(_logger, ex, batch.Count);
                var delay = Math.Min(1000, 25 << Math.Min(attempt, 6));
                await Task.Delay(delay).ConfigureAwait(false);
                // New arrivals join the retry, as long as the batch has room.
                while (batch.Count < _options.BatchSize && _queue.Reader.TryRead(out var item)) batch.Add(item);
            }
        }
    }

    private void ExpireOld(List<Pending> batch)
    {
        var now = Environment.TickCount64;
        var expired = false;
        for (var i = batch.Count - 1; i >= 0; i--)
        {
            if (now - batch[i].EnqueuedMs <= _options.WriteTimeoutMs) continue;
            Decide(batch[i], new PersistenceUnavailableException($"storage unavailable: not committed within {_options.WriteTimeoutMs} ms"));
            batch.RemoveAt(i);
            expired = true;
        }
        if (expired) Settle();                         // an outage may last: the expired ones do not wait for the rest
    }

    /// <summary>Inserts row by row, settling each row the database refuses (see <see cref="RefusalOfAsync"/>). Returns the
    /// rows not decided because the database became unreachable on the way (empty when every row was decided).</summary>
    private async Task<List<Pending>> IsolateAsync(List<Pending> batch)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            var pending = batch[i];
            try
            {
                await InsertAsync([pending]).ConfigureAwait(false);
                Decide(pending, null);
            }
            catch (Exception ex) when (ex is DbException || _dialect.IsTransient(ex))
            {
                if (_dialect.IsTransient(ex) || !await IsReachableAsync().ConfigureAwait(false)) return batch.GetRange(i, batch.Count - i);
                Exception? refusal;
                try
                {
                    refusal = await RefusalOfAsync(pending, ex).ConfigureAwait(false);
                }
                catch (Exception lookup) when (lookup is DbException || _dialect.IsTransient(lookup))
                {
                    return batch.GetRange(i, batch.Count - i);
                }
                Decide(pending, refusal);
            }
        }
        return [];
    }

    /// <summary>What a refused row means: its id already stored (a retry whose first commit went through; MySQL raises on
    /// it, see <see cref="SqlDialect.InsertMessages"/>) is success; its client-msg-id already stored is a duplicate of that
    /// message; anything else is a row the database will not take.</summary>
    private async Task<Exception?> RefusalOfAsync(Pending pending, Exception error)
    {
        await using var connection = _dialect.CreateConnection();
        var stored = await connection.ExecuteScalarAsync<long?>(
            new CommandDefinition("SELECT id FROM messages WHERE id = @id", new { id = pending.Id })).ConfigureAwait(false);
        if (stored is not null) return null;
        if (pending.Key is { } key)
        {
            var original = await connection.ExecuteScalarAsync<long?>(new CommandDefinition(
                "SELECT id FROM messages WHERE sender_id = @senderId AND client_msg_id = @clientMsgId",
                new { senderId = key.SenderId, clientMsgId = key.ClientMsgId })).ConfigureAwait(false);
            if (original is { } originalId)
            {
                Log.Duplicate(_logger, pending.Id, originalId);
                return new DuplicateMessageException(originalId);
            }
        }
        Log.Rejected(_logger, error, pending.Id);
        return new MessageRejectedException(MessageRejection.RefusedByDatabase, error);
    }

    private async Task InsertAsync(IReadOnlyList<Pending> batch)
    {
        var sql = _insertSql.GetOrAdd(batch.Count, count => _dialect.InsertMessages(string.Join(", ",
            Enumerable.Range(0, count).Select(i => $"(@i{i}, @a{i}, @c{i}, @s{i}, @r{i}, @b{i}, @t{i}, 0, NULL, @k{i})"))));
        var parameters = new DynamicParameters();
        for (var i = 0; i < batch.Count; i++)
        {
            var pending = batch[i];
            var m = pending.Draft;
            parameters.Add("i" + i, pending.Id);
            parameters.Add("a" + i, m.AdminId);
            parameters.Add("c" + i, m.ClientId);
            parameters.Add("s" + i, m.SenderId);
            parameters.Add("r" + i, m.ReceiverId);
            parameters.Add("b" + i, pending.BodyText);
            parameters.Add("t" + i, m.SentAt.ToUnixTimeMilliseconds());
            parameters.Add("k" + i, m.ClientMsgId, System.Data.DbType.String);
        }
        using var writing = await _dialect.EnterWriteAsync(CancellationToken.None).ConfigureAwait(false);
        await using var connection = _dialect.CreateConnection();
        await connection.OpenAsync().ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync().ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(sql, parameters, tx)).ConfigureAwait(false);
        await tx.CommitAsync().ConfigureAwait(false);
    }

    private async Task<bool> IsReachableAsync()
    {
        try
        {
            await using var connection = _dialect.CreateConnection();
            await connection.OpenAsync().ConfigureAwait(false);
            await connection.ExecuteScalarAsync<int>("SELECT 1").ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is DbException || _dialect.IsTransient(ex))
        {
            return false;
        }
    }

    /// <summary>Waits until the queued messages of a conversation with id &lt;= <paramref name="upToId"/> are committed or failed.</summary>
    private async Task FlushAsync(Func<Pending, bool> which)
    {
        var waits = _pending.Values.Where(which).Select(p => p.Task).ToArray();
        if (waits.Length == 0) return;
        try
        {
            await Task.WhenAll(waits).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or MessageRejectedException) { }
    }

    // ---- reads and read receipts --------------------------------------------------------------------------------------

    public async Task<SeenResult> MarkSeenAsync(long messageId, string readerId, DateTimeOffset seenAt, string? expectedSenderId = null, CancellationToken cancellationToken = default)
    {
        _gate.ThrowIfClosed();
        await FlushAsync(p => p.Id == messageId).ConfigureAwait(false);      // it may have been delivered before its commit
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
        await FlushAsync(p => p.Draft.AdminId == adminId && p.Draft.ClientId == clientId && p.Id <= upToId).ConfigureAwait(false);
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
        var horizon = Horizon(adminId, clientId);
        var before = beforeId is null ? horizon : horizon is null ? beforeId : Math.Min(beforeId.Value, horizon.Value);
        await using var connection = _dialect.CreateConnection();
        var rows = await connection.QueryAsync<MessageRow>(new CommandDefinition(
            $"SELECT {Columns} FROM messages WHERE admin_id = @adminId AND client_id = @clientId"
            + (before is null ? "" : " AND id < @before") + " ORDER BY id DESC LIMIT @limit",
            new { adminId, clientId, before, limit }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.Select(r => r.ToMessage()).ToList();
    }

    /// <summary>
    /// The oldest id of this conversation (with <paramref name="clientId"/> null: of any conversation of
    /// <paramref name="adminId"/>) registered here and not yet decided, or null. Ids are taken before the commit: a read
    /// stops short of it, so a reader never pages or resumes past a message that is committed later. Append registers each
    /// id before a newer one can exist, so no newer id is committed while an older one is unknown here.
    /// A decided append is left out even while its settled callback runs: it is committed (or never will be), and its
    /// callback may already have published it to a router snapshot taken before the reader subscribed, so the read must
    /// return it (a replay drops what it already gave when the same id also arrives live).
    /// </summary>
    private long? Horizon(string adminId, string? clientId)
    {
        long? horizon = null;
        foreach (var p in _pending.Values)
        {
            if (!p.IsDecided && p.Draft.AdminId == adminId && (clientId is null || p.Draft.ClientId == clientId) && (horizon is null || p.Id < horizon))
                horizon = p.Id;
        }
        return horizon;
    }

    public async Task<IReadOnlyList<ChatMessage>> GetAfterAsync(string adminId, string? clientId, long afterId, int limit, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(adminId);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxReplay);
        _gate.ThrowIfClosed();
        var before = Horizon(adminId, clientId);
        await using var connection = _dialect.CreateConnection();
        var rows = await connection.QueryAsync<MessageRow>(new CommandDefinition(
            $"SELECT {Columns} FROM messages WHERE admin_id = @adminId"
            + (clientId is null ? "" : " AND client_id = @clientId")
            + " AND id > @afterId" + (before is null ? "" : " AND id < @before") + " ORDER BY id LIMIT @limit",
            new { adminId, clientId, afterId, before, limit }, cancellationToken: ct)).ConfigureAwait(false);
        return rows.Select(r => r.ToMessage()).ToList();
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

    public async ValueTask DisposeAsync()
    {
        // Stop taking appends, commit what is queued (bounded by the write timeout), then stop the writer. Idempotent.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping.Cancel();
        _queue.Writer.TryComplete();
        await Task.WhenAny(_writer, Task.Delay(_options.WriteTimeoutMs + 1000)).ConfigureAwait(false);
        // The writer has stopped (or gave up within its bound): this thread settles what it left.
        foreach (var pending in _line) Decide(pending, new PersistenceUnavailableException("storage unavailable: store is shutting down"));
        Settle();
    }

    private sealed class Pending(long id, ChatMessageDraft draft, (string SenderId, string ClientMsgId)? key, Action<long, Exception?>? settled, long enqueuedMs)
    {
        private static readonly object s_committed = new();
        private string? _bodyText;
        private object? _outcome;

        public long Id { get; } = id;
        public ChatMessageDraft Draft { get; } = draft;
        public (string SenderId, string ClientMsgId)? Key { get; } = key;
        public Action<long, Exception?>? Settled { get; } = settled;
        public long EnqueuedMs { get; } = enqueuedMs;
        public TaskCompletionSource Source { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Task => Source.Task;

        /// <summary>In the id registry with its task handed out (false for an append thrown after taking its id).</summary>
        public bool Registered { get; set; }

        public bool IsDecided => Volatile.Read(ref _outcome) is not null;

        /// <summary>The failure it was decided with; null when committed (or not decided yet).</summary>
        public Exception? Error => Volatile.Read(ref _outcome) as Exception;

        public bool TryDecide(Exception? error) => Interlocked.CompareExchange(ref _outcome, error ?? s_committed, null) is null;

        /// <summary>The body as the SQL parameter: decoded once, at the first insert attempt (a retry reuses it).</summary>
        public string BodyText => _bodyText ??= Encoding.UTF8.GetString(Draft.Body.Span);
    }

    private class MessageRow
    {
        public long Id { get; set; }
        public string AdminId { get; set; } = "";
        public string ClientId { get; set; } = "";
        public string SenderId { get; set; } = "";
        public string ReceiverId { get; set; } = "";
        public string Body { get; set; } = "";
        public long SentAt { get; set; }
        public bool Seen { get; set; }
        public long? SeenAt { get; set; }
        public string? ClientMsgId { get; set; }
        public long? DeliveredAt { get; set; }

        public ChatMessage ToMessage() => new(Id, AdminId, ClientId, SenderId, ReceiverId, Body, DateTimeOffset.FromUnixTimeMilliseconds(SentAt),
            Seen, SeenAt is { } s ? DateTimeOffset.FromUnixTimeMilliseconds(s) : null,
            ClientMsgId, DeliveredAt is { } d ? DateTimeOffset.FromUnixTimeMilliseconds(d) : null);
    }

    private sealed class SummaryRow : MessageRow
    {
        public long Unread { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "database unavailable: {Count} messages wait for their commit (retrying)")]
        public static partial void Unavailable(ILogger logger, Exception exception, int count);

        [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "database back: committed {Count} messages after {Attempts} retries")]
        public static partial void Resumed(ILogger logger, int count, int attempts);

        [LoggerMessage(EventId = 402, Level = LogLevel.Error, Message = "message {MessageId} rejected by the database")]
        public static partial void Rejected(ILogger logger, Exception exception, long messageId);

        [LoggerMessage(EventId = 403, Level = LogLevel.Error, Message = "unexpected error while committing {Count} messages: they fail as unavailable")]
        public static partial void WriterError(ILogger logger, Exception exception, int count);

        [LoggerMessage(EventId = 404, Level = LogLevel.Debug, Message = "message {MessageId} not stored: its client-msg-id is stored as message {OriginalId}")]
        public static partial void Duplicate(ILogger logger, long messageId, long originalId);

        [LoggerMessage(EventId = 405, Level = LogLevel.Error, Message = "the settled callback of message {MessageId} threw")]
        public static partial void SettledFailed(ILogger logger, Exception exception, long messageId);
    }
}
