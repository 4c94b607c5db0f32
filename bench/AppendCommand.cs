using System.Diagnostics;
using MySqlConnector;
using WsBroker.Persistence;

namespace WsBroker.Bench;

/// <summary>
/// <c>dotnet run -c Release --project bench -- appends [--mysql CS] [--messages N] [--inflight N]</c>: durable chat-message
/// appends per second on MariaDB through the real store, with group commit (the defaults) and with one INSERT and one
/// commit per message (BatchSize 1). Each run uses a fresh database that is dropped afterwards.
/// </summary>
internal static class AppendCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        var server = Environment.GetEnvironmentVariable("WSBROKER_TEST_MYSQL") ?? "Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test";
        var messages = 20_000;
        var inflight = 512;
        for (var i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--mysql": server = args[++i]; break;
                case "--messages": messages = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--inflight": inflight = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "-h" or "--help":
                    Console.WriteLine("usage: bench appends [--mysql <connection string>] [--messages N (20000)] [--inflight N (512)]");
                    return 0;
                default:
                    Console.Error.WriteLine($"bench appends: unknown option '{args[i]}' (try --help)");
                    return 2;
            }
        }
        var grouped = await MeasureAsync(server, messages, inflight, batchSize: 256);
        var single = await MeasureAsync(server, Math.Max(500, messages / 10), inflight, batchSize: 1);
        Console.WriteLine($"| mode | messages | in flight | seconds | appends/s |");
        Console.WriteLine($"|---|---:|---:|---:|---:|");
        Console.WriteLine($"| group commit (BatchSize 256, BatchDelayMs 2) | {grouped.Messages} | {inflight} | {grouped.Seconds:F2} | {grouped.Rate:N0} |");
        Console.WriteLine($"| one INSERT + commit per message (BatchSize 1) | {single.Messages} | {inflight} | {single.Seconds:F2} | {single.Rate:N0} |");
        Console.WriteLine($"ratio: {grouped.Rate / single.Rate:F1}x");
        return 0;
    }

    private static async Task<(int Messages, double Seconds, double Rate)> MeasureAsync(string server, int count, int inflight, int batchSize)
    {
        var name = $"wsbroker_b_{Guid.NewGuid():N}"[..24];
        var admin = new MySqlConnectionStringBuilder(server) { Database = "" };
        await using (var c = new MySqlConnection(admin.ConnectionString))
        {
            await c.OpenAsync();
            await new MySqlCommand($"CREATE DATABASE `{name}`", c).ExecuteNonQueryAsync();
        }
        try
        {
            var options = new PersistenceOptions
            {
                Provider = StorageProvider.MySql,
                ConnectionString = new MySqlConnectionStringBuilder(server) { Database = name }.ConnectionString,
                BatchSize = batchSize,
                BatchDelayMs = batchSize == 1 ? 0 : 2,
                QueueCapacity = Math.Max(inflight * 2, 1024),
                WriteTimeoutMs = 60_000,
            };
            await using var stores = await StoreFactory.CreateAsync(options);
            var body = new byte[120];
            body.AsSpan().Fill((byte)'x');
            using var gate = new SemaphoreSlim(inflight);
            var tasks = new List<Task>(count);
            var clock = Stopwatch.StartNew();
            var nextId = 0L;
            for (var i = 1; i <= count; i++)
            {
                await gate.WaitAsync();
                var append = stores.Messages.Append(new ChatMessageDraft("admin1", "client1", "client1", "admin1", body, DateTimeOffset.UtcNow), () => ++nextId).Committed;
                tasks.Add(append.ContinueWith(_ => gate.Release(), TaskScheduler.Default));
                tasks.Add(append);
            }
            await Task.WhenAll(tasks);
            clock.Stop();
            return (count, clock.Elapsed.TotalSeconds, count / clock.Elapsed.TotalSeconds);
        }
        finally
        {
            await using var c = new MySqlConnection(admin.ConnectionString);
            await c.OpenAsync();
            await new MySqlCommand($"DROP DATABASE `{name}`", c).ExecuteNonQueryAsync();
        }
    }
}
