using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MySqlConnector;

namespace WsBroker.Broker.Tests.Operations;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServicesOutageCollection
{
    public const string Name = "stops and starts MariaDB and RabbitMQ (runs alone)";
}

/// <summary>/healthz and /readyz against the real MariaDB and RabbitMQ, stopped and started under the broker.</summary>
[Collection(ServicesOutageCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ReadinessTests
{
    [Fact]
    public async Task Readyz_FollowsDatabaseAndBus_WhileHealthzStaysAlive()
    {
        var server = Environment.GetEnvironmentVariable("WSBROKER_TEST_MYSQL") ?? "Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test";
        var rabbit = Environment.GetEnvironmentVariable("WSBROKER_TEST_RABBITMQ_HOST") ?? "127.0.0.1";
        var database = $"wsbroker_r_{Guid.NewGuid():N}"[..24];
        await using (var admin = new MySqlConnection(server))
        {
            await admin.OpenAsync();
            await new MySqlCommand($"CREATE DATABASE `{database}`", admin).ExecuteNonQueryAsync();
        }
        var broker = await TestBroker.StartAsync("Storage:Provider=MySql",
            "ConnectionStrings:MySql=" + new MySqlConnectionStringBuilder(server) { Database = database, ConnectionTimeout = 2 }.ConnectionString,
            "Bus:Transport=RabbitMq", $"Bus:Host={rabbit}", $"Bus:QueueName=wsbroker-ready-{Guid.NewGuid():N}");
        try
        {
            using var http = new HttpClient { BaseAddress = broker.BaseUri, Timeout = TimeSpan.FromSeconds(10) };
            await ExpectAsync(http, HttpStatusCode.OK, "up", "up");
            await Script("mariadb-up.sh", "stop");
            await ExpectAsync(http, HttpStatusCode.ServiceUnavailable, "down", "up");
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
            await Script("mariadb-up.sh", "start");
            await ExpectAsync(http, HttpStatusCode.OK, "up", "up");
            await Script("rabbitmq-up.sh", "stop");
            await ExpectAsync(http, HttpStatusCode.ServiceUnavailable, "up", "down");
            await Script("rabbitmq-up.sh", "start");
            await ExpectAsync(http, HttpStatusCode.OK, "up", "up");
        }
        finally
        {
            await Script("mariadb-up.sh", "start");
            await Script("rabbitmq-up.sh", "start");
            await broker.DisposeAsync();
            await using var admin = new MySqlConnection(server);
            await admin.OpenAsync();
            await new MySqlCommand($"DROP DATABASE IF EXISTS `{database}`", admin).ExecuteNonQueryAsync();
        }
    }

    private static async Task ExpectAsync(HttpClient http, HttpStatusCode status, string database, string bus)
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            try
            {
                var response = await http.GetAsync("/readyz");
                var body = await response.Content.ReadFromJsonAsync<JsonElement>();
                last = $"{(int)response.StatusCode} {body}";
                if (response.StatusCode == status && body.GetProperty("database").GetString() == database && body.GetProperty("bus").GetString() == bus) return;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException) { last = ex.Message; }
            await Task.Delay(250);
        }
        Assert.Fail($"/readyz never became {(int)status} database={database} bus={bus}; last answer: {last}");
    }

    private static async Task Script(string script, string verb)
    {
        var (code, _, stderr) = await Repo.RunAsync("bash", [Path.Combine(Repo.Root, "scripts", script), verb], timeout: TimeSpan.FromSeconds(120));
        Assert.True(code == 0, $"{script} {verb}: {stderr}");
    }
}
