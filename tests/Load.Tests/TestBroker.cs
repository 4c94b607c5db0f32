using Microsoft.AspNetCore.Builder;
using WsBroker.Broker;

namespace WsBroker.Load.Tests;

/// <summary>An in-process WsBroker on 127.0.0.1 (a free port) with a fresh SQLite database, for smoke runs of the load tool.
/// The chat rate limit is raised as load/compare.sh does (the chat scenarios send far faster than a person); the
/// diagnostics endpoints are on (--gc-url); the broker offers heart-beats 1000,1000, so a client that asks for them
/// exchanges some within a short hold (one that asks for none, as by default, gets none).</summary>
internal sealed class TestBroker : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _database;

    private TestBroker(WebApplication app, string database) => (_app, _database) = (app, database);

    /// <summary>http://127.0.0.1:port, without a trailing slash.</summary>
    public string Http => _app.Urls.First();
    public Uri Ws => new(Http.Replace("http", "ws", StringComparison.Ordinal) + "/ws");
    public Uri GcUrl => new(Http + "/debug/gc");

    public static async Task<TestBroker> StartAsync()
    {
        var database = Path.Combine(Path.GetTempPath(), $"wsbroker-load-test-{Guid.NewGuid():N}.db");
        var app = BrokerApp.Build(["--urls", "http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning", $"--ConnectionStrings:Sqlite=Data Source={database}",
            "--Chat:MessagesPerSecond=1000000", "--Chat:MessageBurst=1000000", "--Broker:DiagnosticsEndpoints=true",
            "--Broker:HeartBeatSendMs=1000", "--Broker:HeartBeatReceiveMs=1000"]);
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return new TestBroker(app, database);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await _app.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var f in new[] { _database, _database + "-wal", _database + "-shm" }) File.Delete(f);
    }
}
