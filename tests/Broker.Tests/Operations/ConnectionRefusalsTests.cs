using Microsoft.Extensions.Logging;
using WsBroker.Broker.Hosting;
using WsBroker.Broker.Tests.Sessions;

namespace WsBroker.Broker.Tests.Operations;

public sealed class ConnectionRefusalsTests
{
    /// <summary>Keeps the messages logged.</summary>
    private sealed class Lines : ILogger<ConnectionRefusals>
    {
        public List<string> Logged { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Logged) Logged.Add(formatter(state, exception));
        }
    }

    [Fact]
    public async Task A_flood_is_logged_once_per_interval_and_its_tail_at_the_latest_at_stop()
    {
        var lines = new Lines();
        using var refusals = new ConnectionRefusals(SessionServices.Metrics(), lines);
        await refusals.StartAsync(CancellationToken.None);
        refusals.WebSocketRefused();                                   // logged at once
        for (var i = 0; i < 5; i++) refusals.WebSocketRefused();      // within the interval: counted, not logged
        refusals.HttpRefused();
        Assert.Single(lines.Logged);
        await refusals.StopAsync(CancellationToken.None);              // the tail is not lost
        Assert.Equal(2, lines.Logged.Count);
        Assert.Contains("1 WebSocket upgrades answered 503 and 0 connections", lines.Logged[0], StringComparison.Ordinal);
        Assert.Contains("5 WebSocket upgrades answered 503 and 1 connections", lines.Logged[1], StringComparison.Ordinal);
    }
}
