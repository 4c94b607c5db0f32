using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;

namespace WsBroker.Load.Tests;

/// <summary>--client lean: the tool's own upgrade, against a real broker and against servers that answer it wrongly (the
/// fan-out smoke run is in <see cref="ScenarioSmokeTests"/>, for both clients).</summary>
public sealed class LeanWebSocketTests : IAsyncLifetime
{
    private TestBroker _broker = null!;

    public async Task InitializeAsync() => _broker = await TestBroker.StartAsync();

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    private async Task<ScenarioResult> RunAsync(params string[] args)
    {
        var options = LoadOptions.Parse([.. args, "--url", _broker.Ws.ToString(), "--dev-tokens", "--warmup", "200ms", "--no-progress", "--client", "lean"])!;
        Assert.True(options.LeanClient);
        return await Scenarios.RunAsync(options, new RunStats(), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Idle_WithHeartBeats_HoldsEveryConnection_AndBeatsBothWays()
    {
        var r = await RunAsync("idle", "--connections", "20", "--duration", "2500ms", "--heart-beat", "1000,1000");
        Assert.Equal(20, r.Extra["held"]);
        Assert.Equal(0, r.Extra["closed_by_broker"]);
        Assert.True(r.Extra["heart_beats_sent"] >= 20);
        Assert.True(r.Extra["heart_beats_received"] >= 20);
    }

    [Fact]
    public async Task LoadConnection_RefusedConnect_SaysWhy()
    {
        var o = LoadOptions.Parse(["pairs", "--url", _broker.Ws.ToString(), "--client", "lean", "--login", "client1", "--passcode", "not-a-token"])!;
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => LoadConnection.ConnectAsync(o, null, CancellationToken.None));
        Assert.StartsWith("broker refused CONNECT: authentication failed", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_RefusedByTheBroker_NamesTheStatus()
    {
        // A path that is no WebSocket endpoint of the broker: the normal HTTP pipeline answers, not with 101.
        var url = new Uri(_broker.Http.Replace("http", "ws", StringComparison.Ordinal) + "/not-a-socket");
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => LeanWebSocket.ConnectAsync(url, "v12.stomp", null, CancellationToken.None));
        Assert.Contains("not 101", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_RefusedWithABody_NamesTheStatus_NotTheBody()
    {
        // The broker refuses a subprotocol it does not speak with 400 and a JSON problem body.
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => LeanWebSocket.ConnectAsync(_broker.Ws, "mqtt", null, CancellationToken.None));
        Assert.Contains("'HTTP/1.1 400", ex.Message, StringComparison.Ordinal);
        Assert.Contains("not 101", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_ServerSpeaksBeforeTheClient_IsRefused()
    {
        await using var server = await FakeServer.StartAsync(key => Accept(key) + "\r\n" + "unexpected");
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => LeanWebSocket.ConnectAsync(server.Url, "v12.stomp", null, CancellationToken.None));
        Assert.Contains("bytes after its upgrade response", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_ServerClosesMidResponse_IsRefused()
    {
        await using var server = await FakeServer.StartAsync(_ => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => LeanWebSocket.ConnectAsync(server.Url, "v12.stomp", null, CancellationToken.None));
        Assert.Contains("closed the connection during the upgrade", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_AcceptedByAFakeServer_FramesFlowBothWays()
    {
        await using var server = await FakeServer.StartAsync(key => Accept(key) + "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n", echo: true);
        using var socket = await LeanWebSocket.ConnectAsync(server.Url, "v12.stomp", null, CancellationToken.None);
        Assert.Equal("v12.stomp", socket.SubProtocol);
        await socket.SendAsync("ping"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[16];
        var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
        Assert.Equal("ping", Encoding.UTF8.GetString(buffer, 0, result.Count));       // unmasked by the fake server, echoed
    }

    [Theory]
    [InlineData("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0", "not 101")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}", "no 'Upgrade: websocket'")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}", "no 'Connection: Upgrade'")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=", "does not match the key")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: mqtt", "not asked for")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nno colon here", "bad header line")]
    public void Check_BadResponses_AreRefusedWithTheReason(string head, string reason)
    {
        const string key = "dGhlIHNhbXBsZSBub25jZQ==";
        var ex = Assert.Throws<WebSocketException>(() => LeanWebSocket.Check(head.Replace("{accept}", AcceptValue(key), StringComparison.Ordinal), key, "v12.stomp"));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_TheRfcExample_IsAccepted()
    {
        // RFC 6455 section 1.3: key dGhlIHNhbXBsZSBub25jZQ== gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
        var head = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        Assert.Null(LeanWebSocket.Check(head, "dGhlIHNhbXBsZSBub25jZQ==", "v12.stomp"));
    }

    [Theory]
    [InlineData("--client", "tcp", "--client must be system or lean")]
    [InlineData("--url", "wss://127.0.0.1:1/ws", "--client lean speaks ws:// only")]
    public void Options_BadClient_IsAUsageError(string name, string value, string message)
    {
        string[] args = name == "--client" ? ["pairs", "--client", value] : ["pairs", "--client", "lean", name, value];
        var ex = Assert.Throws<LoadUsageException>(() => LoadOptions.Parse(args));
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    private static string AcceptValue(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));

    private static string Accept(string key) =>
        $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {AcceptValue(key)}\r\n";

    /// <summary>One connection: reads the upgrade request, writes <c>respond(key)</c>, then closes (or, with echo, echoes one
    /// client frame back unmasked).</summary>
    private sealed class FakeServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly Task _serving;

        private FakeServer(TcpListener listener, Task serving) => (_listener, _serving) = (listener, serving);

        public Uri Url => new($"ws://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/ws");

        public static Task<FakeServer> StartAsync(Func<string, string> respond, bool echo = false)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return Task.FromResult(new FakeServer(listener, ServeAsync(listener, respond, echo)));
        }

        private static async Task ServeAsync(TcpListener listener, Func<string, string> respond, bool echo)
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var request = new StringBuilder();
            var buffer = new byte[4096];
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer);
                if (read == 0) return;
                request.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            var key = request.ToString().Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))[18..].Trim();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(respond(key)));
            if (!echo) return;
            // One masked client frame of at most 125 bytes: 2 header bytes, 4 mask bytes, the payload.
            var length = 0;
            while (length < 6 || length < 6 + (buffer[1] & 0x7F))
            {
                var read = await stream.ReadAsync(buffer.AsMemory(length));
                if (read == 0) return;                                    // the client gave up
                length += read;
            }
            var payload = buffer.AsSpan(6, buffer[1] & 0x7F).ToArray();
            for (var i = 0; i < payload.Length; i++) payload[i] ^= buffer[2 + i % 4];
            await stream.WriteAsync((byte[])[0x81, (byte)payload.Length, .. payload]);
            await Task.Delay(200);
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            try { await _serving.WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or TimeoutException) { }
        }
    }
}
