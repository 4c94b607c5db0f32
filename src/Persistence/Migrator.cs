using Dapper;

namespace WsBroker.Persistence;

/// <summary>Applies the dialect's versioned scripts once each, recording them in <c>schema_version</c>. Idempotent. On
/// MySQL serialised across nodes by a named lock (its DDL commits itself, so each version is one statement); on SQLite by
/// the transaction, which <c>BEGIN IMMEDIATE</c>s and applies every version or none.</summary>
internal static class Migrator
{
    /// <summary>Migrates to the newest version, or to <paramref name="upTo"/> (the schema as an older release left it).</summary>
    public static async Task<int> MigrateAsync(SqlDialect dialect, CancellationToken cancellationToken, int? upTo = null)
    {
        var target = Math.Min(upTo ?? dialect.Migrations.Count, dialect.Migrations.Count);
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(cancellationToken);
        await using var _ = await dialect.LockMigrationsAsync(connection, cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)", transaction: tx, cancellationToken: cancellationToken));
        var current = await connection.ExecuteScalarAsync<int?>(new CommandDefinition("SELECT MAX(version) FROM schema_version", transaction: tx, cancellationToken: cancellationToken)) ?? 0;
        var applied = 0;
        for (var version = current + 1; version <= target; version++)
        {
            foreach (var statement in Split(dialect.Migrations[version - 1]))
                await connection.ExecuteAsync(new CommandDefinition(statement, transaction: tx, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition("INSERT INTO schema_version (version, applied_at) VALUES (@version, @at)",
                new { version, at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, tx, cancellationToken: cancellationToken));
            applied++;
        }
        await tx.CommitAsync(cancellationToken);
        return applied;
    }

    private static IEnumerable<string> Split(string script) =>
        script.Split(";\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(s => s.Length > 0);
}
