using System.Diagnostics.Metrics;
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
        await using var broker = await StartWithTheShareAsync();
        using var counted = new HttpConnections(broker);
        var silent = new List<TcpClient>();
        try
        {
            for (var i = 0; i < Share; i++) silent.Add(await ConnectTcpAsync(broker));
            await counted.WaitForAsync(Share);                        // accepted and counted before the next one
            silent.Add(await ConnectTcpAsync(broker));
            var over = await ClosedAtOnceAsync(silent);               // without a byte
            silent.Remove(over);
            over.Dispose();

            silent[0].Dispose();                                      // one place free: upgrades go through it, one by one
            silent.RemoveAt(0);
            await counted.WaitForAsync(Share - 1);                    // its end seen
            await using var first = await broker.ConnectAsync("share-1");
            await using var second = await broker.ConnectAsync("share-2");   // only if the first gave its place back

            await MetricsText.WaitForAsync(broker.BaseUri, "wsbroker_connections_refused_total{reason=\"http_limit\"}", 1,
                "the closed connection is counted");
        }
        finally
        {
            foreach (var client in silent) client.Dispose();
        }
    }

    // The one of these closed at once, past the share: the last to connect, or on the ASP.NET Core path possibly the one
    // before it (Kestrel counts a connection a moment before its limit takes the place, so the two can swap). The others
    // are still being read when this returns; disposing them ends those reads.
    private static async Task<TcpClient> ClosedAtOnceAsync(List<TcpClient> clients)
    {
        var reads = clients.Select(client => client.GetStream().ReadAsync(new byte[16]).AsTask()).ToList();
        var closed = await Task.WhenAny(reads).WaitAsync(StompTestClient.Timeout);
        Assert.Equal(0, await closed);
        return clients[reads.IndexOf(closed)];
    }

    [Fact]
    public async Task A_WebSocket_upgraded_on_the_HTTP_layer_gives_its_HTTP_place_back()
    {
        // An upgrade the pipeline endpoint leaves to the HTTP layer (here: a keep-alive connection's second request) is
        // upgraded there; like one upgraded by the endpoint, it must not hold an HTTP place for its life.
        await using var broker = await StartWithTheShareAsync();
        var upgraded = new List<TcpClient>();
        try
        {
            for (var i = 0; i < Share; i++) upgraded.Add(await UpgradedAfterARequestAsync(broker));
            await using var client = await broker.ConnectAsync("after-the-share");   // refused if they held the share
            using var http = new HttpClient { BaseAddress = broker.BaseUri };
            Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
        }
        finally
        {
            foreach (var client in upgraded) client.Dispose();
        }
    }

    // A connection that asks GET /healthz, then upgrades to /ws as its second request; returns it once it has the 101.
    private static async Task<TcpClient> UpgradedAfterARequestAsync(TestBroker broker)
    {
        var tcp = await ConnectTcpAsync(broker);
        var stream = tcp.GetStream();
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"GET /healthz HTTP/1.1\r\nHost: {broker.BaseUri.Authority}\r\n\r\n"));
        var (head, body) = await ReadResponseAsync(stream);
        Assert.StartsWith("HTTP/1.1 200", head, StringComparison.Ordinal);
        // The whole body, so that the upgrade is the next request: chunked (its last chunk ends it) or of a known length.
        var length = System.Text.RegularExpressions.Regex.Match(head, @"(?im)^content-length:\s*(\d+)");
        bool Whole() => length.Success
            ? body.Length >= int.Parse(length.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)
            : body.EndsWith("0\r\n\r\n", StringComparison.Ordinal);
        while (!Whole()) body += (await ReadResponseAsync(stream, bodyOnly: true)).Body;
        var key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"GET /ws HTTP/1.1\r\nHost: {broker.BaseUri.Authority}\r\n"
            + $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 101", (await ReadResponseAsync(stream)).Head, StringComparison.Ordinal);
        return tcp;
    }

    // Reads a response's head (and what came of its body with it); with bodyOnly, whatever the next read brings.
    private static async Task<(string Head, string Body)> ReadResponseAsync(NetworkStream stream, bool bodyOnly = false)
    {
        using var cts = new CancellationTokenSource(StompTestClient.Timeout);
        var received = new System.Text.StringBuilder();
        var buffer = new byte[4096];
        while (true)
        {
            var read = await stream.ReadAsync(buffer, cts.Token);
            Assert.True(read > 0, $"closed: {received}");
            received.Append(System.Text.Encoding.Latin1.GetString(buffer, 0, read));
            if (bodyOnly) return ("", received.ToString());
            var text = received.ToString();
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0) return (text[..end], text[(end + 4)..]);
        }
    }

    // A broker with an HTTP share of Share connections, whose silent sockets are not closed during a test.
    private static Task<TestBroker> StartWithTheShareAsync() => TestBroker.StartAsync(
        services => services.AddSingleton(new ConnectionLimits(-1, -1, -1, 0, WebSockets: 100, Http: Share)),
        "Broker:ConnectTimeoutMs=60000");

    // The connections the HTTP share holds: the pipeline endpoint's own count, or on the ASP.NET Core path (where Kestrel
    // counts them against its limit) Kestrel's kestrel.active_connections of this broker, counted from before the test's
    // first connection.
    private sealed class HttpConnections : IDisposable
    {
        private readonly PipelineWebSocketEndpoint? _endpoint;
        private readonly MeterListener _kestrel = new();
        private long _active;

        public HttpConnections(TestBroker broker)
        {
            if (!string.Equals(TestBroker.Transport, "AspNetCore", StringComparison.OrdinalIgnoreCase))
            {
                _endpoint = broker.Services.GetRequiredService<PipelineWebSocketEndpoint>();
                return;
            }
            var meters = broker.Services.GetRequiredService<IMeterFactory>();
            _kestrel.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Scope == meters && instrument.Name == "kestrel.active_connections") listener.EnableMeasurementEvents(instrument);
            };
            _kestrel.SetMeasurementEventCallback<long>((_, change, _, _) => Interlocked.Add(ref _active, change));
            _kestrel.Start();
        }

        private long Now => _endpoint?.HttpConnectionsForTests ?? Interlocked.Read(ref _active);

        public async Task WaitForAsync(int connections)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (Now != connections)
            {
                Assert.True(DateTime.UtcNow < deadline, $"{Now} connections in the HTTP share, not {connections}");
                await Task.Delay(10);
            }
        }

        public void Dispose() => _kestrel.Dispose();
    }

    private static async Task<TcpClient> ConnectTcpAsync(TestBroker broker)
    {
        var client = new TcpClient();
        await client.ConnectAsync(broker.BaseUri.Host, broker.BaseUri.Port);
        return client;
    }
}
