using Dapper;

namespace WsBroker.Persistence;

/// <summary>Applies the dialect's versioned scripts once each, recording them in <c>schema_version</c>. Idempotent; on
/// MySQL serialised across nodes by a named lock.</summary>
internal static class Migrator
{
    public static async Task<int> MigrateAsync(SqlDialect dialect, CancellationToken cancellationToken)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(cancellationToken);
        await using var _ = await dialect.LockMigrationsAsync(connection, cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)", cancellationToken: cancellationToken));
        var current = await connection.ExecuteScalarAsync<int?>(new CommandDefinition("SELECT MAX(version) FROM schema_version", cancellationToken: cancellationToken)) ?? 0;
        var applied = 0;
        for (var version = current + 1; version <= dialect.Migrations.Count; version++)
        {
            foreach (var statement in Split(dialect.Migrations[version - 1]))
                await connection.ExecuteAsync(new CommandDefinition(statement, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition("INSERT INTO schema_version (version, applied_at) VALUES (@version, @at)",
                new { version, at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, cancellationToken: cancellationToken));
            applied++;
        }
        return applied;
    }

    private static IEnumerable<string> Split(string script) =>
        script.Split(";\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(s => s.Length > 0);
}
