using System.Diagnostics;
using System.Text;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MySqlConnector;
using RabbitMQ.Client;
using WsBroker.Persistence;
using WsBroker.UserSync.Contracts;

namespace WsBroker.UserSync.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RabbitMqCollection
{
    public const string Name = "RabbitMQ (one at a time: a test restarts the server)";
}

/// <summary>The consumers against the real RabbitMQ and the real MariaDB user store (both started by scripts/services-up.sh).</summary>
[Collection(RabbitMqCollection.Name)]
[Trait("Category", "Integration")]
public sealed class UserSyncIntegrationTests : IAsyncLifetime
{
    private static readonly string s_rabbit = Environment.GetEnvironmentVariable("WSBROKER_TEST_RABBITMQ_HOST") ?? "127.0.0.1";
    private static readonly string s_mysql = Environment.GetEnvironmentVariable("WSBROKER_TEST_MYSQL")
        ?? "Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test";
    private readonly string _queue = $"wsbroker-users-test-{Guid.NewGuid():N}"[..32];
    private readonly string _database = $"wsbroker_u_{Guid.NewGuid():N}"[..24];
    private IHost _host = null!;

    private IUserStore Users => _host.Services.GetRequiredService<IUserStore>();

    public async Task InitializeAsync()
    {
        await using (var admin = new MySqlConnection(s_mysql))
        {
            await admin.OpenAsync();
            await new MySqlCommand($"CREATE DATABASE `{_database}`", admin).ExecuteNonQueryAsync();
        }
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Bus:Transport"] = "RabbitMq",
            ["Bus:Host"] = s_rabbit,
            ["Bus:QueueName"] = _queue,
            ["Storage:Provider"] = "MySql",
            ["ConnectionStrings:MySql"] = new MySqlConnectionStringBuilder(s_mysql) { Database = _database }.ConnectionString,
            ["Logging:LogLevel:Default"] = "Warning",
        });
        builder.Services.AddWsBrokerPersistence(builder.Configuration);
        builder.Services.AddWsBrokerUserSync(builder.Configuration);
        _host = builder.Build();
        await _host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
        // The receive endpoint binds the event exchanges when it is ready: wait for that before publishing.
        await _host.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        _host.Dispose();
        await using var admin = new MySqlConnection(s_mysql);
        await admin.OpenAsync();
        await new MySqlCommand($"DROP DATABASE IF EXISTS `{_database}`", admin).ExecuteNonQueryAsync();
        await using var connection = await RabbitConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeleteAsync(_queue);
        await channel.QueueDeleteAsync(_queue + "_error");
    }

    [Fact]
    public async Task Command_PublishesCreatedUpdatedDeleted_AndTheUserTableFollows()
    {
        var deleted = new List<string>();
        _host.Services.GetRequiredService<IUserEvents>().UserDeleted += deleted.Add;
        Assert.Equal(0, await Cli("publish", "created", "--id", "c1", "--name", "Ana", "--role", "client", "--version", "1"));
        await Eventually(async () => (await Users.FindAsync("c1"))?.Name == "Ana");
        Assert.Equal(0, await Cli("publish", "updated", "--id", "c1", "--name", "Ana Maria", "--role", "admin", "--version", "2"));
        await Eventually(async () => (await Users.FindAsync("c1"))?.Role == UserRole.Admin);
        Assert.Equal("Ana Maria", (await Users.FindAsync("c1"))!.Name);
        Assert.Equal(0, await Cli("publish", "deleted", "--id", "c1", "--version", "3"));
        await Eventually(async () => (await Users.FindAsync("c1"))?.IsDeleted == true);
        await Eventually(() => Task.FromResult(deleted.Contains("c1")));
    }

    [Fact]
    public async Task Command_ImportsACsvFile()
    {
        var file = Path.Combine(Path.GetTempPath(), $"users-{Guid.NewGuid():N}.csv");
        await File.WriteAllTextAsync(file, "id,name,role,version\nimp-a,\"Admin, A\",admin,1\nimp-c1,C One,client,1\nimp-c2,C Two,client,1\n");
        Assert.Equal(0, await Cli("import", file));
        await Eventually(async () => (await Users.ListAsync()).Count(u => u.Id.StartsWith("imp-", StringComparison.Ordinal)) == 3);
        Assert.Equal("Admin, A", (await Users.FindAsync("imp-a"))!.Name);
    }

    [Fact]
    public async Task Events_OutOfOrderAndDuplicated_EndInTheNewestState()
    {
        var bus = _host.Services.GetRequiredService<IBus>();
        var t = DateTimeOffset.UtcNow;
        await bus.Publish(new UserUpdated("o1", "third", "client", 3, t));
        await bus.Publish(new UserCreated("o1", "first", "client", 1, t));
        await bus.Publish(new UserUpdated("o1", "second", "client", 2, t));
        await bus.Publish(new UserUpdated("o1", "third", "client", 3, t));
        await bus.Publish(new UserDeleted("o2", "", "client", 5, t));
        await bus.Publish(new UserCreated("o2", "late create", "client", 4, t));
        await bus.Publish(new UserCreated("o3", "marker", "client", 1, t));
        // Consumers run concurrently (ConcurrentMessageLimit), so wait for each user's own final state.
        await Eventually(async () => await Users.FindAsync("o3") is not null);
        await Eventually(async () => (await Users.FindAsync("o1"))?.Version == 3);
        await Eventually(async () => (await Users.FindAsync("o2"))?.Version == 5);
        await Task.Delay(300);                                         // nothing older may overwrite them afterwards
        Assert.Equal(("third", 3L), ((await Users.FindAsync("o1"))!.Name, (await Users.FindAsync("o1"))!.Version));
        Assert.True((await Users.FindAsync("o2"))!.IsDeleted);
    }

    [Fact]
    public async Task MalformedMessages_GoToTheErrorQueue_AndConsumingGoesOn()
    {
        var bus = _host.Services.GetRequiredService<IBus>();
        await bus.Publish(new UserCreated("bad", "Bad", "boss", 1, DateTimeOffset.UtcNow));      // unknown role
        await bus.Publish(new UserCreated("", "No id", "client", 1, DateTimeOffset.UtcNow));      // empty id
        await using (var connection = await RabbitConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
        {
            // Not even JSON, straight into the consumer's queue.
            var props = new BasicProperties { ContentType = "application/vnd.masstransit+json", Persistent = true };
            await channel.BasicPublishAsync("", _queue, true, props, Encoding.UTF8.GetBytes("{{{ not json"));
        }
        await bus.Publish(new UserCreated("good", "Good", "client", 1, DateTimeOffset.UtcNow));
        await Eventually(async () => await Users.FindAsync("good") is not null);
        await Eventually(async () => await QueueDepthAsync(_queue + "_error") == 3, TimeSpan.FromSeconds(20));
        Assert.Null(await Users.FindAsync("bad"));
    }

    [Fact]
    public async Task DatabaseDownForSeconds_EventsWaitAndAreApplied_NoneGoToTheErrorQueue()
    {
        var bus = _host.Services.GetRequiredService<IBus>();
        await Script("mariadb-up.sh", "stop");
        try
        {
            for (var i = 0; i < 5; i++) await bus.Publish(new UserCreated($"o{i}", $"Outage {i}", "client", 1, DateTimeOffset.UtcNow));
            await Task.Delay(8000);                                    // longer than a short retry policy would wait
        }
        finally
        {
            await Script("mariadb-up.sh", "start");
        }
        await Eventually(async () => (await Users.ListAsync()).Count(u => u.Id.StartsWith('o')) == 5, TimeSpan.FromSeconds(60));
        Assert.Equal(0u, await QueueDepthAsync(_queue + "_error"));
    }

    [Fact]
    public async Task RabbitMqRestartedWhilePublishing_EveryConfirmedEventIsApplied()
    {
        var confirmed = new List<string>();
        var publisher = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(s_rabbit, "/", h => { h.Username("guest"); h.Password("guest"); }));
        await publisher.StartAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        try
        {
            var publishing = Task.Run(async () =>
            {
                for (var i = 0; i < 150; i++)
                {
                    var id = $"r{i}";
                    // Like the user service would: a publish that RabbitMQ did not confirm is retried.
                    for (var attempt = 0; attempt < 200; attempt++)
                    {
                        try
                        {
                            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                            await publisher.Publish(new UserCreated(id, id, "client", 1, DateTimeOffset.UtcNow), cts.Token);
                            lock (confirmed) confirmed.Add(id);
                            break;
                        }
                        catch (Exception ex) when (ex is OperationCanceledException or MassTransitException or RabbitMqConnectionException or RabbitMQ.Client.Exceptions.AlreadyClosedException)
                        {
                            await Task.Delay(200);
                        }
                    }
                    await Task.Delay(20);
                }
            });
            await Task.Delay(700);
            await Script("rabbitmq-up.sh", "stop");
            await Task.Delay(1000);
            await Script("rabbitmq-up.sh", "start");
            await publishing.WaitAsync(TimeSpan.FromSeconds(120));
            Assert.Equal(150, confirmed.Count);
            await Eventually(async () => (await Users.ListAsync()).Count(u => u.Id.StartsWith('r')) == 150, TimeSpan.FromSeconds(90));
        }
        finally
        {
            await publisher.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        }
    }

    private static Task<int> Cli(params string[] args) =>
        PublisherCommand.RunAsync([.. args, "--host", s_rabbit], TextWriter.Null, TextWriter.Null, TimeSpan.FromSeconds(15));

    private static async Task<IConnection> RabbitConnectionAsync() =>
        await new ConnectionFactory { HostName = s_rabbit, UserName = "guest", Password = "guest" }.CreateConnectionAsync();

    private static async Task<uint> QueueDepthAsync(string queue)
    {
        try
        {
            await using var connection = await RabbitConnectionAsync();
            await using var channel = await connection.CreateChannelAsync();
            return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return 0;                                             // not declared yet
        }
    }

    private static async Task Eventually(Func<Task<bool>> condition, TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > (timeout ?? TimeSpan.FromSeconds(15))) Assert.Fail("condition not met in time");
            await Task.Delay(50);
        }
    }

    private static async Task Script(string script, string verb)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "scripts", script))) dir = dir.Parent;
        Assert.NotNull(dir);
        using var process = Process.Start(new ProcessStartInfo("bash", [Path.Combine(dir.FullName, "scripts", script), verb])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        Assert.True(process.ExitCode == 0, $"{script} {verb}: {await process.StandardError.ReadToEndAsync()}");
    }
}
