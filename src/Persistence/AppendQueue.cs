using System.Collections.Concurrent;
using System.Data.Common;
using System.Threading.Channels;
using Dapper;
using Microsoft.Extensions.Logging;

namespace WsBroker.Persistence;

/// <summary>
/// The append path of <see cref="MessageStore"/>, write-behind with group commit: <see cref="Append"/> gives the message
/// its id, registers it and queues it (bounded) in one step under one lock, and returns the id with a task; one writer
/// turns everything ready (up to <c>BatchSize</c> messages, waiting at most <c>BatchDelayMs</c> for more) into one
/// multi-row INSERT in one transaction, then completes each task. The queue is in the order the ids were taken and the one
/// writer commits in queue order, so (ids taken in increasing order) no id becomes visible before an older one of this
/// store. While the database is unreachable the writer retries with back-off; a message that waited longer than
/// <c>WriteTimeoutMs</c>, or finds the queue full, fails with <see cref="PersistenceUnavailableException"/>. Retried batches
/// skip ids already stored, so nothing is stored twice.
/// Every append that took an id is also in <c>_line</c>, in the order the ids were taken. Deciding an append (committed or
/// failed) and settling it are two steps: settling happens strictly along that line, under one lock, so the callers'
/// <c>settled</c> callbacks run one at a time in id order, each before its <see cref="PendingAppend.Committed"/> completes
/// (an append without a callback completes as soon as it is decided).
/// The drafts it takes are already checked by the store; it checks only the ids it is given.
/// </summary>
internal sealed partial class AppendQueue : IAsyncDisposable
{
    private readonly SqlDialect _dialect;
    private readonly PersistenceOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<QueuedAppend> _queue;
    private readonly ConcurrentDictionary<long, QueuedAppend> _pending = new();
    private readonly ConcurrentDictionary<(string SenderId, string ClientMsgId), QueuedAppend> _byClientMsgId = new();
    private readonly ConcurrentQueue<QueuedAppend> _line = new();
    private readonly Lock _appendLock = new();
    private readonly Lock _settleLock = new();
    private bool _draining;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _writer;
    private readonly ConcurrentDictionary<int, string> _insertSql = new();
    private int _disposed;

    public AppendQueue(SqlDialect dialect, PersistenceOptions options, ILogger logger)
    {
        _dialect = dialect;
        _options = options;
        _logger = logger;
        _queue = Channel.CreateBounded<QueuedAppend>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Appends registered and not settled yet: the write-behind queue depth (for metrics).</summary>
    public int Depth => _pending.Count;

    /// <summary>Raised after every commit with the batch size and the commit duration.</summary>
    public event Action<int, TimeSpan>? Committed;

    /// <summary>Takes an id for <paramref name="draft"/> (a draft the store has checked), registers and queues it; see
    /// <see cref="IMessageStore.Append"/>.</summary>
    public PendingAppend Append(ChatMessageDraft draft, Func<long> allocateId, Action<long, Exception?>? settled)
    {
        (string, string)? key = draft.ClientMsgId is { } clientMsgId ? (draft.SenderId, clientMsgId) : null;
        QueuedAppend pending;
        MessageRejectedException? thrown = null;
        // One lock from the id to the queue: ids are registered (history pages stop short of them, see Horizon), put in the
        // settle line and queued in the order they are taken, so a newer id is never committed while an older one is
        // unknown here, and settled calls follow id order.
        lock (_appendLock)
        {
            if (key is { } k && _byClientMsgId.TryGetValue(k, out var inFlight))
                return new PendingAppend(inFlight.Id, inFlight.Task, Duplicate: true);
            var id = allocateId();
            pending = new QueuedAppend(id, draft, key, settled, Environment.TickCount64);
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
        if (pending.IsDecided) ThreadPool.UnsafeQueueUserWorkItem(static queue => queue.Settle(), this, preferLocal: false);
        if (thrown is not null) throw thrown;
        return new PendingAppend(pending.Id, pending.Task);
    }

    // ---- deciding and settling ------------------------------------------------------------------------------------------

    /// <summary>Records how an append ended (the first decision wins). An append without a settled callback completes now;
    /// one with a callback waits for <see cref="Settle"/>, which the decider must run (or schedule) afterwards.</summary>
    private void Decide(QueuedAppend pending, Exception? error)
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
    private void Finish(QueuedAppend pending)
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
        var batch = new List<QueuedAppend>(_options.BatchSize);
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

    private async Task CommitWithRetryAsync(List<QueuedAppend> batch)
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

    private void ExpireOld(List<QueuedAppend> batch)
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
    private async Task<List<QueuedAppend>> IsolateAsync(List<QueuedAppend> batch)
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
    private async Task<Exception?> RefusalOfAsync(QueuedAppend pending, Exception error)
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

    private async Task InsertAsync(IReadOnlyList<QueuedAppend> batch)
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

    // ---- what reads wait for ------------------------------------------------------------------------------------------

    /// <summary>
    /// The oldest id of this conversation (with <paramref name="clientId"/> null: of any conversation of
    /// <paramref name="adminId"/>) registered here and not yet decided, or null. Ids are taken before the commit: a read
    /// stops short of it, so a reader never pages or resumes past a message that is committed later. Append registers each
    /// id before a newer one can exist, so no newer id is committed while an older one is unknown here.
    /// A decided append is left out even while its settled callback runs: it is committed (or never will be), and its
    /// callback may already have published it to a router snapshot taken before the reader subscribed, so the read must
    /// return it (a replay drops what it already gave when the same id also arrives live).
    /// </summary>
    public long? Horizon(string adminId, string? clientId)
    {
        long? horizon = null;
        foreach (var p in _pending.Values)
        {
            if (!p.IsDecided && p.Draft.AdminId == adminId && (clientId is null || p.Draft.ClientId == clientId) && (horizon is null || p.Id < horizon))
                horizon = p.Id;
        }
        return horizon;
    }

    /// <summary>Waits until the registered appends that <paramref name="which"/> selects are committed or failed (a
    /// failure is for their appender to report, not for the caller).</summary>
    public async Task FlushAsync(Func<QueuedAppend, bool> which)
    {
        var waits = _pending.Values.Where(which).Select(p => p.Task).ToArray();
        if (waits.Length == 0) return;
        try
        {
            await Task.WhenAll(waits).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or MessageRejectedException) { }
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
