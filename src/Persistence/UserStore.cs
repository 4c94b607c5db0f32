using System.Collections.Concurrent;
using System.Data.Common;
using Dapper;

namespace WsBroker.Persistence;

/// <summary>The users table. Every change is version-checked in a transaction (newer wins), so redelivered and reordered
/// events are harmless. Lookups are served from memory: every SEND checks both users.</summary>
internal sealed class UserStore : IUserStore
{
    private static readonly TimeSpan s_cacheLifetime = TimeSpan.FromSeconds(30);
    private readonly SqlDialect _dialect;
    private readonly StoreGate _gate;
    private readonly ConcurrentDictionary<string, (UserRecord? User, long ExpiresMs)> _cache = new(StringComparer.Ordinal);

    public UserStore(SqlDialect dialect, StoreGate gate)
    {
        _dialect = dialect;
        _gate = gate;
    }

    public event Action<UserChange>? Changed;

    public Task<UserChangeOutcome> UpsertAsync(string id, string name, UserRole role, long version, DateTimeOffset occurredAt, CancellationToken cancellationToken = default)
    {
        Validate(id);
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length > 200) throw new ArgumentException("name is longer than 200 characters", nameof(name));
        return ApplyAsync(id, name, role, version, deleted: null, occurredAt, cancellationToken);
    }

    public Task<UserChangeOutcome> DeleteAsync(string id, long version, DateTimeOffset occurredAt, CancellationToken cancellationToken = default)
    {
        Validate(id);
        return ApplyAsync(id, null, null, version, deleted: occurredAt, occurredAt, cancellationToken);
    }

    private async Task<UserChangeOutcome> ApplyAsync(string id, string? name, UserRole? role, long version, DateTimeOffset? deleted,
        DateTimeOffset occurredAt, CancellationToken cancellationToken)
    {
        if (version <= 0) throw new ArgumentOutOfRangeException(nameof(version), "version must be positive");
        _gate.ThrowIfClosed();
        for (var attempt = 0; ; attempt++)
        {
            await using var connection = _dialect.CreateConnection();
            await connection.OpenAsync(cancellationToken);
            await using var tx = await connection.BeginTransactionAsync(cancellationToken);
            try
            {
                var existing = await connection.QuerySingleOrDefaultAsync<UserRow>(new CommandDefinition(
                    "SELECT id, name, role, version, deleted_at AS DeletedAt, updated_at AS UpdatedAt FROM users WHERE id = @id" + _dialect.ForUpdate,
                    new { id }, tx, cancellationToken: cancellationToken));
                if (existing is not null && existing.Version >= version)
                {
                    await tx.RollbackAsync(cancellationToken);
                    // The stored row is at least as new: another node of a cluster (or an earlier delivery) applied it.
                    // This node's cache takes it now, not when its entry expires.
                    Cache(existing.ToRecord());
                    return UserChangeOutcome.Stale;
                }
                // A delete keeps the name and role it had (a tombstone for an unknown user gets placeholders).
                var row = new UserRow
                {
                    Id = id,
                    Name = name ?? existing?.Name ?? "",
                    Role = role is { } r ? r.ToWire() : existing?.Role ?? UserRoles.Client,
                    Version = version,
                    DeletedAt = deleted?.ToUnixTimeMilliseconds(),
                    UpdatedAt = occurredAt.ToUnixTimeMilliseconds(),
                };
                var sql = existing is null
                    ? "INSERT INTO users (id, name, role, version, deleted_at, updated_at) VALUES (@Id, @Name, @Role, @Version, @DeletedAt, @UpdatedAt)"
                    : "UPDATE users SET name = @Name, role = @Role, version = @Version, deleted_at = @DeletedAt, updated_at = @UpdatedAt WHERE id = @Id";
                await connection.ExecuteAsync(new CommandDefinition(sql, row, tx, cancellationToken: cancellationToken));
                await tx.CommitAsync(cancellationToken);
                var record = row.ToRecord();
                Cache(record);
                Changed?.Invoke(new UserChange(record, deleted is not null));
                return UserChangeOutcome.Applied;
            }
            catch (DbException ex) when (attempt < 10 && IsDuplicateOrBusy(ex))
            {
                // Writers inserted the same new user at once (duplicate key, or a deadlock on the gap lock of the missing
                // row): the losers retry after a short random pause and see the winner's row.
                await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
                await Task.Delay(Random.Shared.Next(1, 5 << Math.Min(attempt, 5)), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // Written after the commit, outside the row lock: a concurrent newer version may have been cached already, and must not
    // be replaced by this older one.
    private void Cache(UserRecord record)
    {
        var entry = Fresh(record);
        _cache.AddOrUpdate(record.Id, entry, (_, current) => current.User is { } cached && cached.Version > record.Version ? current : entry);
    }

    /// <summary>A cache entry for <paramref name="user"/> that lives <see cref="s_cacheLifetime"/> from now.</summary>
    private static (UserRecord? User, long ExpiresMs) Fresh(UserRecord? user) => (user, Environment.TickCount64 + (long)s_cacheLifetime.TotalMilliseconds);

    public async ValueTask<UserRecord?> FindAsync(string id, CancellationToken cancellationToken = default)
    {
        _gate.ThrowIfClosed();
        if (string.IsNullOrEmpty(id) || id.Length > 64) return null;
        var cached = _cache.TryGetValue(id, out var entry);
        if (cached && entry.ExpiresMs > Environment.TickCount64) return entry.User;
        UserRow? row;
        try
        {
            await using var connection = _dialect.CreateConnection();
            row = await connection.QuerySingleOrDefaultAsync<UserRow>(new CommandDefinition(
                "SELECT id, name, role, version, deleted_at AS DeletedAt, updated_at AS UpdatedAt FROM users WHERE id = @id",
                new { id }, cancellationToken: cancellationToken));
        }
        catch (DbException ex)
        {
            // The database is unreachable: a user known before keeps its last known state (stale beats failing every
            // SEND of an outage); one never seen cannot be checked, and the caller is told storage is unavailable.
            if (cached)
            {
                // Keep it a little longer: during a partition every lookup would otherwise wait a connect timeout.
                _cache.TryUpdate(id, (entry.User, Environment.TickCount64 + 5_000), entry);
                return entry.User;
            }
            throw new PersistenceUnavailableException($"storage unavailable: cannot look up user '{id}'", ex);
        }
        var user = row?.ToRecord();
        var fresh = Fresh(user);
        // Only replace what was there when the read began: an event applied meanwhile (ApplyAsync writes the cache) is
        // newer than this read, and overwriting it with a "not found" read before the commit would hide the user for
        // the cache's lifetime.
        var stored = cached ? _cache.TryUpdate(id, fresh, entry) : _cache.TryAdd(id, fresh);
        return stored || !_cache.TryGetValue(id, out var newer) ? user : newer.User;
    }

    public async Task<IReadOnlyDictionary<string, UserRecord>> FindManyAsync(IReadOnlyCollection<string> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        _gate.ThrowIfClosed();
        var found = new Dictionary<string, UserRecord>(StringComparer.Ordinal);
        var missing = new List<string>();
        var now = Environment.TickCount64;
        foreach (var id in ids)
        {
            if (string.IsNullOrEmpty(id) || id.Length > 64) continue;
            if (_cache.TryGetValue(id, out var entry) && entry.ExpiresMs > now)
            {
                if (entry.User is { } user) found[id] = user;
            }
            else missing.Add(id);
        }
        foreach (var chunk in missing.Distinct(StringComparer.Ordinal).Chunk(500))
        {
            await using var connection = _dialect.CreateConnection();
            var rows = await connection.QueryAsync<UserRow>(new CommandDefinition(
                "SELECT id, name, role, version, deleted_at AS DeletedAt, updated_at AS UpdatedAt FROM users WHERE id IN @chunk",
                new { chunk }, cancellationToken: cancellationToken));
            foreach (var row in rows)
            {
                var user = row.ToRecord();
                Cache(user);
                found[user.Id] = user;
            }
        }
        return found;
    }

    public async Task<IReadOnlyList<UserRecord>> ListAsync(UserRole? role = null, CancellationToken cancellationToken = default)
    {
        _gate.ThrowIfClosed();
        await using var connection = _dialect.CreateConnection();
        var rows = await connection.QueryAsync<UserRow>(new CommandDefinition(
            "SELECT id, name, role, version, deleted_at AS DeletedAt, updated_at AS UpdatedAt FROM users WHERE deleted_at IS NULL"
            + (role is null ? "" : " AND role = @role") + " ORDER BY id",
            new { role = role?.ToWire() }, cancellationToken: cancellationToken));
        return rows.Select(r => r.ToRecord()).ToList();
    }

    private static void Validate(string id)
    {
        if (string.IsNullOrWhiteSpace(id)) throw new ArgumentException("user id must not be empty", nameof(id));
        if (id.Length > 64) throw new ArgumentException("user id is longer than 64 characters", nameof(id));
    }

    private static bool IsDuplicateOrBusy(DbException ex) =>
        ex is MySqlConnector.MySqlException { ErrorCode: MySqlConnector.MySqlErrorCode.DuplicateKeyEntry or MySqlConnector.MySqlErrorCode.LockDeadlock }
        || ex is Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 19 or 5 };

    private sealed class UserRow
    {
        public string Id { get; set; } = "";
        public string Name { get; set; } = "";
        public string Role { get; set; } = UserRoles.Client;
        public long Version { get; set; }
        public long? DeletedAt { get; set; }
        public long UpdatedAt { get; set; }

        // Only this store writes the column, always through UserRoles; anything else reads as the least privileged role.
        public UserRecord ToRecord() => new(Id, Name, UserRoles.TryParse(Role, out var role) ? role : UserRole.Client, Version,
            DeletedAt is { } d ? DateTimeOffset.FromUnixTimeMilliseconds(d) : null, DateTimeOffset.FromUnixTimeMilliseconds(UpdatedAt));
    }
}
