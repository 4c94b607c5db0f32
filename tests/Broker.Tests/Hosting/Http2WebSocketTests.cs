using System.Net.Security;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Hosting;

/// <summary>WebSockets over HTTP/2 (RFC 8441's extended CONNECT), end to end: a broker on an <c>https://</c> address that
/// speaks HTTP/2 only, and .NET's client asking for HTTP/2 exactly. The HTTP layer upgrades them on both transports
/// (<c>WebSocketEndpoint</c>, with <c>TimedUpgradeFeature</c> under the socket), and several share one TCP connection.</summary>
public sealed class Http2WebSocketTests : IDisposable
{
    private const string Password = "http2-tests";
    private readonly string _certificate = Path.Combine(Path.GetTempPath(), $"wsbroker-http2-{Guid.NewGuid():N}.pfx");
    private int _connections;                                   // TCP connections the client opened

    public Http2WebSocketTests()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllBytes(_certificate, certificate.Export(X509ContentType.Pfx, Password));
    }

    public void Dispose() => File.Delete(_certificate);

    [Fact]
    public async Task Stomp_over_HTTP2_two_sessions_on_one_connection_each_get_their_own_frames()
    {
        await using var broker = await StartAsync();
        using var http2 = Client();
        await using var alice = await broker.ConnectAsync("alice", http2: http2);
        await using var bob = await broker.ConnectAsync("bob", http2: http2);
        Assert.Equal(1, _connections);                           // two WebSockets, one HTTP/2 connection

        await alice.SendAsync("SUBSCRIBE\nid:a\ndestination:/topic/h2\nreceipt:a\n\n\0");
        await alice.ReceiveUntilReceiptAsync("a");
        await bob.SendAsync("SUBSCRIBE\nid:b\ndestination:/topic/h2-bob\nreceipt:b\n\n\0");
        await bob.ReceiveUntilReceiptAsync("b");
        await bob.SendAsync("SEND\ndestination:/topic/h2\n\nfrom bob\0");
        await alice.SendAsync("SEND\ndestination:/topic/h2-bob\n\nfrom alice\0");

        Assert.Equal("from bob", (await alice.ReceiveAsync(StompCommand.Message)).BodyText);
        Assert.Equal("from alice", (await bob.ReceiveAsync(StompCommand.Message)).BodyText);

        // One stream closed: the other, on the same connection, goes on.
        await alice.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None).WaitAsync(StompTestClient.Timeout);
        await bob.SendAsync("SEND\ndestination:/topic/h2-bob\n\nstill here\0");
        Assert.Equal("still here", (await bob.ReceiveAsync(StompCommand.Message)).BodyText);
    }

    [Fact]
    public async Task The_WebSocket_limit_holds_over_HTTP2_and_a_closed_stream_gives_its_place_back()
    {
        await using var broker = await StartAsync("Broker:MaxConnections=1");
        using var http2 = Client();
        await using var first = await broker.ConnectAsync("first", http2: http2);
        var refused = await Assert.ThrowsAsync<WebSocketException>(() => StompTestClient.OpenAsync(broker.WsUri, http2: http2));
        Assert.Equal("refused 503", refused.Message);

        await first.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None).WaitAsync(StompTestClient.Timeout);
        await using var next = await broker.ConnectOncePlaceIsFreeAsync("next", http2);
        Assert.Equal(1, _connections);
    }

    [Fact]
    public async Task A_raw_topic_URL_over_HTTP2_sends_and_gets_what_is_sent_to_its_topic()
    {
        await using var broker = await StartAsync();
        using var http2 = Client();
        using var raw = new ClientWebSocket();
        raw.Options.HttpVersion = System.Net.HttpVersion.Version20;
        raw.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        var url = new Uri($"{broker.WsUri}/topic/h2-raw?access_token={broker.Token("reader")}");
        await raw.ConnectAsync(url, http2, CancellationToken.None).WaitAsync(StompTestClient.Timeout);
        // Its own message comes back with its receipt: subscribed, so what STOMP sends next reaches it.
        await raw.SendAsync("from raw"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None).WaitAsync(StompTestClient.Timeout);
        var answers = new[] { await ReceiveTextAsync(raw), await ReceiveTextAsync(raw) };
        Assert.Contains(answers, a => a.Contains("\"receipt\"", StringComparison.Ordinal));
        Assert.Contains(answers, a => a.Contains("from raw", StringComparison.Ordinal));

        await using var sender = await broker.ConnectAsync("sender", http2: http2);
        await sender.SendAsync("SEND\ndestination:/topic/h2-raw\n\nfrom stomp\0");
        Assert.Contains("from stomp", await ReceiveTextAsync(raw), StringComparison.Ordinal);
        Assert.Equal(1, _connections);
    }

    private static async Task<string> ReceiveTextAsync(ClientWebSocket socket)
    {
        var buffer = new byte[4096];
        var received = await socket.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(StompTestClient.Timeout);
        Assert.Equal(WebSocketMessageType.Text, received.MessageType);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, received.Count);
    }

    private Task<TestBroker> StartAsync(params string[] settings) => TestBroker.StartAsync(
    [
        "Kestrel:Endpoints:H2:Url=https://127.0.0.1:0", "Kestrel:Endpoints:H2:Protocols=Http2",
        $"Kestrel:Endpoints:H2:Certificate:Path={_certificate}", $"Kestrel:Endpoints:H2:Certificate:Password={Password}",
        .. settings,
    ]);

    // An HTTP/2 client that takes any certificate (the test's is self-signed) and counts the TCP connections it opens.
    private HttpMessageInvoker Client() => new(new SocketsHttpHandler
    {
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = static (_, _, _, _) => true },
        ConnectCallback = async (context, cancel) =>
        {
            Interlocked.Increment(ref _connections);
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            await socket.ConnectAsync(context.DnsEndPoint, cancel);
            return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        },
    });
}
