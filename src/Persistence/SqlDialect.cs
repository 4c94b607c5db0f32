using System.Data.Common;
using Dapper;
using Microsoft.Data.Sqlite;
using MySqlConnector;

namespace WsBroker.Persistence;

/// <summary>What differs between MySQL/MariaDB and SQLite: connections, DDL, idempotent inserts, the migration lock.
/// Times are stored as Unix milliseconds (BIGINT) in both, so ordering and round trips are exact.</summary>
internal abstract class SqlDialect
{
    protected SqlDialect(string connectionString) => ConnectionString = connectionString;

    public string ConnectionString { get; }

    public abstract StorageProvider Provider { get; }

    public abstract DbConnection CreateConnection();

    /// <summary>The schema, one script per version; each statement separated by ";\n".</summary>
    public abstract IReadOnlyList<string> Migrations { get; }

    /// <summary>The multi-row "INSERT … VALUES" of a batch. Where the engine can name the key, a row whose id exists is
    /// skipped (a retried batch must not store twice); a row that collides on another key (a client-msg-id already stored)
    /// always raises, and the writer settles it row by row.</summary>
    public abstract string InsertMessages(string values);

    /// <summary>"FOR UPDATE" where the engine has row locks.</summary>
    public abstract string ForUpdate { get; }

    /// <summary>Taken around every write transaction of the message store: null where the database takes concurrent
    /// writers itself (MySQL row locks). SQLite has one writer at a time, and two of ours colliding would make the second
    /// sleep in SQLite's busy handler (tens of milliseconds); queueing them here costs only the wait for the first.</summary>
    public virtual ValueTask<IDisposable?> EnterWriteAsync(CancellationToken cancellationToken) => ValueTask.FromResult<IDisposable?>(null);

    public abstract Task<IAsyncDisposable> LockMigrationsAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>True when the exception means "could not reach the database" (retry), not "this data is wrong".</summary>
    public abstract bool IsTransient(Exception exception);

    public static SqlDialect Create(PersistenceOptions options) => options.Provider switch
    {
        StorageProvider.MySql => new MySqlDialect(WithTimeouts(options.ConnectionString, options.WriteTimeoutMs)),
        _ => new SqliteDialect(options.ConnectionString),
    };

    /// <summary>
    /// Bounds how long one attempt may hang on a server that does not answer (a network partition rather than a refused
    /// connection): MySqlConnector's defaults (15 s to connect, 30 s per command) would keep messages queued far past
    /// <c>Storage:WriteTimeoutMs</c>. Values given in the connection string win.
    /// </summary>
    internal static string WithTimeouts(string connectionString, int writeTimeoutMs)
    {
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        var builder = new MySqlConnectionStringBuilder(connectionString);
        string[] connectKeys = ["Connection Timeout", "Connect Timeout", "ConnectionTimeout"];
        string[] commandKeys = ["Default Command Timeout", "DefaultCommandTimeout", "Command Timeout"];
        var seconds = (uint)Math.Clamp(writeTimeoutMs / 1000, 1, 15);
        if (!connectKeys.Any(given.ContainsKey)) builder.ConnectionTimeout = seconds;
        if (!commandKeys.Any(given.ContainsKey)) builder.DefaultCommandTimeout = Math.Max(10u, 2 * seconds);
        return builder.ConnectionString;
    }
}

internal sealed class MySqlDialect(string connectionString) : SqlDialect(connectionString)
{
    public override StorageProvider Provider => StorageProvider.MySql;

    public override DbConnection CreateConnection() => new MySqlConnection(ConnectionString);

    public override IReadOnlyList<string> Migrations { get; } =
    [
        """
        CREATE TABLE IF NOT EXISTS users (
          id VARCHAR(64) NOT NULL PRIMARY KEY,
          name VARCHAR(200) NOT NULL,
          role VARCHAR(16) NOT NULL,
          version BIGINT NOT NULL,
          deleted_at BIGINT NULL,
          updated_at BIGINT NOT NULL
        ) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
        CREATE TABLE IF NOT EXISTS messages (
          id BIGINT NOT NULL PRIMARY KEY,
          admin_id VARCHAR(64) NOT NULL,
          client_id VARCHAR(64) NOT NULL,
          sender_id VARCHAR(64) NOT NULL,
          receiver_id VARCHAR(64) NOT NULL,
          body MEDIUMTEXT NOT NULL,
          sent_at BIGINT NOT NULL,
          seen TINYINT(1) NOT NULL DEFAULT 0,
          seen_at BIGINT NULL,
          INDEX ix_messages_conversation (admin_id, client_id, id),
          INDEX ix_messages_client (client_id, admin_id, id),
          INDEX ix_messages_unread (receiver_id, seen, admin_id, client_id)
        ) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
        """,
        // One ALTER: InnoDB applies it whole or not at all (MySQL DDL is not transactional, so no second statement).
        // NULL client_msg_ids never collide in a unique index, so messages sent without one are unaffected.
        """
        ALTER TABLE messages
          ADD COLUMN client_msg_id VARCHAR(64) NULL,
          ADD COLUMN delivered_at BIGINT NULL,
          ADD UNIQUE INDEX ux_messages_client_msg (sender_id, client_msg_id),
          ADD INDEX ix_messages_admin (admin_id, id)
        """,
    ];

    // No ON DUPLICATE KEY / IGNORE: both apply to every unique key, so they would also swallow a client-msg-id already
    // stored. A duplicate id (a retry whose first commit went through) raises instead, and the writer finds it stored.
    public override string InsertMessages(string values) =>
        "INSERT INTO messages (id, admin_id, client_id, sender_id, receiver_id, body, sent_at, seen, seen_at, client_msg_id) VALUES " + values;

    public override string ForUpdate => " FOR UPDATE";

    public override async Task<IAsyncDisposable> LockMigrationsAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        // Two nodes starting at once: the second waits here until the first has migrated.
        var got = await connection.ExecuteScalarAsync<long?>(new CommandDefinition("SELECT GET_LOCK('wsbroker_migrate', 60)", cancellationToken: cancellationToken));
        if (got != 1) throw new InvalidOperationException("could not take the migration lock 'wsbroker_migrate' within 60 s");
        return new Releaser(connection);
    }

    public override bool IsTransient(Exception exception) => exception switch
    {
        // Besides lost connections and lock timeouts: the server refusing every write for a while (read-only, disk or
        // table full, storage engine write error) is an outage to wait out, not a bad message to reject.
        MySqlException my => my.IsTransient || my.ErrorCode is MySqlErrorCode.UnableToConnectToHost or MySqlErrorCode.ConnectionCountError
            or MySqlErrorCode.CommandTimeoutExpired || my.Number is 1213 or 1205 or 2006 or 2013 or 1927 or 1053
            or 1290 or 1836 or 1114 or 1021 or 3 or 1030,
        System.Net.Sockets.SocketException or IOException or TimeoutException or EndOfStreamException => true,
        InvalidOperationException ioe => ioe.InnerException is not null && IsTransient(ioe.InnerException),
        _ => false,
    };

    private sealed class Releaser(DbConnection connection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await connection.ExecuteAsync("DO RELEASE_LOCK('wsbroker_migrate')");
    }
}

internal sealed class SqliteDialect : SqlDialect
{
    public SqliteDialect(string connectionString) : base(Normalize(connectionString)) { }

    public override StorageProvider Provider => StorageProvider.Sqlite;

    public override DbConnection CreateConnection() => new SqliteConnection(ConnectionString);

    public override IReadOnlyList<string> Migrations { get; } =
    [
        """
        CREATE TABLE IF NOT EXISTS users (
          id TEXT NOT NULL PRIMARY KEY,
          name TEXT NOT NULL,
          role TEXT NOT NULL,
          version INTEGER NOT NULL,
          deleted_at INTEGER NULL,
          updated_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS messages (
          id INTEGER NOT NULL PRIMARY KEY,
          admin_id TEXT NOT NULL,
          client_id TEXT NOT NULL,
          sender_id TEXT NOT NULL,
          receiver_id TEXT NOT NULL,
          body TEXT NOT NULL,
          sent_at INTEGER NOT NULL,
          seen INTEGER NOT NULL DEFAULT 0,
          seen_at INTEGER NULL
        );
        CREATE INDEX IF NOT EXISTS ix_messages_conversation ON messages (admin_id, client_id, id);
        CREATE INDEX IF NOT EXISTS ix_messages_client ON messages (client_id, admin_id, id);
        CREATE INDEX IF NOT EXISTS ix_messages_unread ON messages (receiver_id, seen, admin_id, client_id)
        """,
        // NULL client_msg_ids never collide in a unique index, so messages sent without one are unaffected.
        """
        ALTER TABLE messages ADD COLUMN client_msg_id TEXT NULL;
        ALTER TABLE messages ADD COLUMN delivered_at INTEGER NULL;
        CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_client_msg ON messages (sender_id, client_msg_id);
        CREATE INDEX IF NOT EXISTS ix_messages_admin ON messages (admin_id, id)
        """,
    ];

    // The conflict target names the primary key only: a client-msg-id already stored still raises.
    public override string InsertMessages(string values) =>
        "INSERT INTO messages (id, admin_id, client_id, sender_id, receiver_id, body, sent_at, seen, seen_at, client_msg_id) VALUES " + values
        + " ON CONFLICT(id) DO NOTHING";

    public override string ForUpdate => "";

    private readonly SemaphoreSlim _writer = new(1, 1);

    public override async ValueTask<IDisposable?> EnterWriteAsync(CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new Release(_writer);
    }

    private sealed class Release(SemaphoreSlim writer) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) writer.Release();
        }
    }

    public override async Task<IAsyncDisposable> LockMigrationsAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        // WAL lets readers and the single writer work at once; it is a property of the file, set once.
        await connection.ExecuteAsync(new CommandDefinition("PRAGMA journal_mode=WAL", cancellationToken: cancellationToken));
        return NoLock.Instance;
    }

    public override bool IsTransient(Exception exception) =>
        exception is SqliteException { SqliteErrorCode: 5 or 6 or 8 or 10 or 13 or 14 } or IOException;   // BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN

    private static string Normalize(string connectionString)
    {
        var builder = new SqliteConnectionStringBuilder(connectionString);
        if (builder.DefaultTimeout < 30) builder.DefaultTimeout = 30;
        if (!string.IsNullOrEmpty(builder.DataSource) && builder.DataSource != ":memory:" && builder.Mode != SqliteOpenMode.Memory)
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(builder.DataSource));
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
        }
        return builder.ToString();
    }

    private sealed class NoLock : IAsyncDisposable
    {
        public static readonly NoLock Instance = new();
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
