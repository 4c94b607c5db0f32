using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker.Hosting;

namespace WsBroker.Broker.Tests.Operations;

/// <summary>The HTTP share of <see cref="ConnectionLimits"/> on a real listener, on either transport (the pipeline
/// endpoint counts it itself, the ASP.NET Core path leaves it to Kestrel): connections that are not upgraded hold it, one
/// past it is closed at once and counted, and an upgraded WebSocket gives its place back.</summary>
[Collection(MetricsCollection.Name)]
public sealed class HttpShareTests
{
    private const int Share = 3;

    [Fact]
    public async Task Past_the_HTTP_share_a_connection_is_closed_at_once_and_counted_and_an_upgrade_gives_its_place_back()
    {
        await using var broker = await TestBroker.StartAsync(
            services => services.AddSingleton(new ConnectionLimits(-1, -1, -1, 0, WebSockets: 100, Http: Share)),
            "Broker:ConnectTimeoutMs=60000");
        var silent = new List<TcpClient>();
        try
        {
            for (var i = 0; i < Share; i++) silent.Add(await ConnectTcpAsync(broker));
            await CountedAsync(broker, Share);                                // accepted and counted before the next one

            using (var over = await ConnectTcpAsync(broker))
            {
                var read = await over.GetStream().ReadAsync(new byte[16]).AsTask().WaitAsync(StompTestClient.Timeout);
                Assert.Equal(0, read);                                // closed at once, without a byte
            }

            silent[0].Dispose();                                      // one place free: upgrades go through it, one by one
            silent.RemoveAt(0);
            await CountedAsync(broker, Share - 1);                            // its end seen
            await using var first = await broker.ConnectAsync("share-1");
            await using var second = await broker.ConnectAsync("share-2");   // only if the first gave its place back

            foreach (var client in silent) client.Dispose();
            silent.Clear();
            await Task.Delay(200);
            var metrics = await MetricsText.ScrapeAsync(broker.BaseUri);
            Assert.True(metrics["wsbroker_connections_refused_total{reason=\"http_limit\"}"] >= 1, "the closed connection is counted");
        }
        finally
        {
            foreach (var client in silent) client.Dispose();
        }
    }

    // Waits until the HTTP share holds this many connections. The ASP.NET Core path leaves the count to Kestrel, which
    // shows it nowhere: a second is left for its accept loop there.
    private static async Task CountedAsync(TestBroker broker, int connections)
    {
        if (string.Equals(TestBroker.Transport, "AspNetCore", StringComparison.OrdinalIgnoreCase))
        {
            await Task.Delay(1000);
            return;
        }
        var endpoint = broker.Services.GetRequiredService<PipelineWebSocketEndpoint>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (endpoint.HttpConnectionsForTests != connections)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{endpoint.HttpConnectionsForTests} connections in the HTTP share, not {connections}");
            await Task.Delay(10);
        }
    }

    private static async Task<TcpClient> ConnectTcpAsync(TestBroker broker)
    {
        var client = new TcpClient();
        await client.ConnectAsync(broker.BaseUri.Host, broker.BaseUri.Port);
        return client;
    }
}
