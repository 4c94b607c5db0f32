using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using MySqlConnector;

namespace WsBroker.Persistence.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MariaDbOutageCollection
{
    public const string Name = "MariaDB outage (runs alone: it stops the server)";
}

/// <summary>Stops the real MariaDB in the middle of appends and starts it again.</summary>
[Collection(MariaDbOutageCollection.Name)]
[Trait("Category", "Integration")]
public sealed class OutageTests
{
    [Fact]
    public async Task Append_DatabaseStoppedAndRestarted_AcknowledgedStoredOnce_FailedReported_WritingResumes()
    {
        var (options, stores, drop) = await StoresWithUsersAsync(2500);
        try
        {
            var acknowledged = new ConcurrentBag<long>();
            var failed = new ConcurrentBag<long>();
            var other = new ConcurrentBag<Exception>();
            var texts = new ConcurrentBag<string>();
            var id = 1L;
            var appends = new List<Task>();
            async Task AppendOneAsync(long messageId)
            {
                try
                {
                    await stores.Messages.Append(Draft($"m{messageId}"), () => messageId).Committed;
                    acknowledged.Add(messageId);
                }
                catch (PersistenceUnavailableException ex)
                {
                    failed.Add(messageId);
                    texts.Add(ex.Message);
                }
                catch (Exception ex) { other.Add(ex); }
            }
            // Steady traffic: one append every 2 ms; the server is down from 1 s for 4 s, and the traffic goes on for 3 s
            // after it is back (however long its stop and start took: a fixed end once came before the writer resumed).
            using var endOfTraffic = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            var traffic = Task.Run(async () =>
            {
                while (!endOfTraffic.IsCancellationRequested)
                {
                    appends.Add(AppendOneAsync(id++));
                    await Task.Delay(2);
                }
            });
            await Task.Delay(1000);
            await Script("stop");
            // A user the store has never seen cannot be looked up while the server is down (the chat handler checks the
            // parties this way): a clear "unavailable", not a driver exception.
            await Assert.ThrowsAsync<PersistenceUnavailableException>(() => stores.Users.FindAsync("never-seen").AsTask());
            await Task.Delay(4000);
            await Script("start");
            endOfTraffic.CancelAfter(TimeSpan.FromSeconds(3));
            await traffic;
            await Task.WhenAll(appends).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Empty(other);
            // Fixed texts only: nothing of the driver's exception reaches a message a client may see.
            Assert.All(texts, t => Assert.StartsWith("storage unavailable: ", t, StringComparison.Ordinal));
            Assert.All(texts, t => Assert.DoesNotContain("connect", t, StringComparison.OrdinalIgnoreCase));

            var stored = new List<long>();
            await using (var connection = new MySqlConnection(options.ConnectionString))
            {
                await connection.OpenAsync();
                await using var command = new MySqlCommand("SELECT id FROM messages", connection);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync()) stored.Add(reader.GetInt64(0));
            }
            var storedSet = stored.ToHashSet();
            Assert.Equal(stored.Count, storedSet.Count);                            // nothing stored twice
            Assert.All(acknowledged, m => Assert.Contains(m, storedSet));          // every acknowledged message is stored
            Assert.Equal(id - 1, acknowledged.Count + failed.Count);                // every append has an outcome
            Assert.NotEmpty(failed);                                                // the outage outlasted the write timeout for some
            Assert.True(acknowledged.Count(m => !failed.Contains(m)) > 0);
            // Messages sent after the restart were committed: writing resumed on its own.
            Assert.Contains(acknowledged, m => m > failed.Max());
        }
        finally
        {
            await Script("start");
            await stores.DisposeAsync();
            await drop();
        }
    }

    [Fact]
    public async Task Append_ServerReadOnlyForAWhile_IsRetried_NotRejectedAsBadInput()
    {
        var (_, stores, drop) = await StoresWithUsersAsync(10_000);
        try
        {
            await RootSql("SET GLOBAL read_only = 1");                   // the server refuses writes (error 1290) for a while
            var append = stores.Messages.Append(Draft("while read-only"), () => 77).Committed;
            await Task.Delay(1500);
            Assert.False(append.IsCompleted, "the append waits while the server refuses writes");
            await RootSql("SET GLOBAL read_only = 0");
            await append.WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal("while read-only", (await stores.Messages.FindAsync(77))!.Body);
        }
        finally
        {
            await RootSql("SET GLOBAL read_only = 0");
            await stores.DisposeAsync();
            await drop();
        }
    }

    private static ChatMessageDraft Draft(string body) => new("adm", "cli", "cli", "adm", Encoding.UTF8.GetBytes(body), DateTimeOffset.UtcNow);

    /// <summary>A fresh MariaDB database with the stores open and the two users "adm" and "cli".</summary>
    private static async Task<(PersistenceOptions Options, PersistenceStores Stores, Func<Task> Drop)> StoresWithUsersAsync(int writeTimeoutMs)
    {
        var (options, drop) = await TestDatabases.CreateAsync(StorageProvider.MySql, o => o.WriteTimeoutMs = writeTimeoutMs);
        var stores = await StoreFactory.CreateAsync(options);
        var t = DateTimeOffset.UtcNow;
        await stores.Users.UpsertAsync("adm", "A", UserRole.Admin, 1, t);
        await stores.Users.UpsertAsync("cli", "C", UserRole.Client, 1, t);
        return (options, stores, drop);
    }

    private static async Task RootSql(string sql)
    {
        using var process = Process.Start(new ProcessStartInfo("mariadb", ["--protocol=socket", "-uroot", "-e", sql])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(process.ExitCode == 0, $"mariadb -e {sql}: {await process.StandardError.ReadToEndAsync()}");
    }

    private static async Task Script(string verb)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "scripts", "mariadb-up.sh"))) dir = dir.Parent;
        Assert.NotNull(dir);
        using var process = Process.Start(new ProcessStartInfo("bash", [Path.Combine(dir.FullName, "scripts", "mariadb-up.sh"), verb])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
        Assert.True(process.ExitCode == 0, $"mariadb-up.sh {verb}: {await process.StandardError.ReadToEndAsync()}");
    }
}
