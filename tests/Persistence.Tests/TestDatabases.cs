using MySqlConnector;

namespace WsBroker.Persistence.Tests;

/// <summary>Fresh databases for one test class: a temp SQLite file, or a new MariaDB database (the real server started by
/// scripts/mariadb-up.sh; WSBROKER_TEST_MYSQL names it). Dropped afterwards.</summary>
public static class TestDatabases
{
    public static string MySqlServer =>
        Environment.GetEnvironmentVariable("WSBROKER_TEST_MYSQL") ?? "Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test";

    public static async Task<(PersistenceOptions Options, Func<Task> Drop)> CreateAsync(StorageProvider provider, Action<PersistenceOptions>? tune = null)
    {
        var options = new PersistenceOptions { Provider = provider };
        Func<Task> drop;
        if (provider == StorageProvider.Sqlite)
        {
            var file = Path.Combine(Path.GetTempPath(), $"wsbroker-test-{Guid.NewGuid():N}.db");
            options.ConnectionString = $"Data Source={file}";
            drop = () =>
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                foreach (var f in new[] { file, file + "-wal", file + "-shm" }) File.Delete(f);
                return Task.CompletedTask;
            };
        }
        else
        {
            var name = $"wsbroker_t_{Guid.NewGuid():N}"[..24];
            var server = new MySqlConnectionStringBuilder(MySqlServer);
            try
            {
                await using var admin = new MySqlConnection(server.ConnectionString);
                await admin.OpenAsync();
                await using var create = new MySqlCommand($"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", admin);
                await create.ExecuteNonQueryAsync();
            }
            catch (MySqlException ex)
            {
                throw new InvalidOperationException($"MariaDB is not reachable at {server.Server}:{server.Port} — run scripts/mariadb-up.sh ({ex.Message})", ex);
            }
            server.Database = name;
            options.ConnectionString = server.ConnectionString;
            drop = async () =>
            {
                MySqlConnection.ClearAllPools();
                var adminCs = new MySqlConnectionStringBuilder(MySqlServer) { Database = "" };
                await using var admin = new MySqlConnection(adminCs.ConnectionString);
                await admin.OpenAsync();
                await using var dropCmd = new MySqlCommand($"DROP DATABASE IF EXISTS `{name}`", admin);
                await dropCmd.ExecuteNonQueryAsync();
            };
        }
        tune?.Invoke(options);
        return (options, drop);
    }
}
