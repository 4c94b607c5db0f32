using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker;
using WsBroker.Broker.Auth;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests;

/// <summary>A real broker on 127.0.0.1 with an ephemeral port, for one test.</summary>
public sealed class TestBroker : IAsyncDisposable
{
    public const string SigningKey = "broker-tests-signing-key-0123456789abcdefghij";
    private readonly WebApplication _app;

    private readonly string _database;

    private TestBroker(WebApplication app, Uri baseUri, string database)
    {
        _app = app;
        BaseUri = baseUri;
        _database = database;
    }

    public Uri BaseUri { get; }
    /// <summary>The STOMP endpoint: <c>wss://</c> on a broker whose address is <c>https://</c>.</summary>
    public Uri WsUri => new($"{(BaseUri.Scheme == Uri.UriSchemeHttps ? "wss" : "ws")}://{BaseUri.Authority}/ws");
    public IServiceProvider Services => _app.Services;

    /// <summary>The transport the suite runs on: <c>WSBROKER_TEST_TRANSPORT=Pipeline|AspNetCore</c> (unset: the broker's
    /// default), so that the same tests run on both (docs/design.md §1).</summary>
    public static string? Transport => Environment.GetEnvironmentVariable("WSBROKER_TEST_TRANSPORT") is { Length: > 0 } t ? t : null;

    public static Task<TestBroker> StartAsync(params string[] settings) => StartAsync(null, settings);

    /// <summary>Starts a broker whose services <paramref name="configure"/> may change (a part replaced for a test).</summary>
    public static async Task<TestBroker> StartAsync(Action<IServiceCollection>? configure, params string[] settings)
    {
        var database = Path.Combine(Path.GetTempPath(), $"wsbroker-broker-test-{Guid.NewGuid():N}.db");
        var args = new List<string>
        {
            "--urls", "http://127.0.0.1:0", $"--Auth:SigningKey={SigningKey}", "--Logging:LogLevel:Default=Warning",
            $"--ConnectionStrings:Sqlite=Data Source={database}",
        };
        if (Transport is { } transport && !settings.Any(s => s.StartsWith("Broker:Transport=", StringComparison.OrdinalIgnoreCase)))
            args.Add($"--Broker:Transport={transport}");
        args.AddRange(settings.Select(s => "--" + s));
        var app = BrokerApp.Build([.. args], builder => configure?.Invoke(builder.Services));
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return new TestBroker(app, new Uri(app.Urls.First()), database);
    }

    public string Token(string user, string role = "client", TimeSpan? lifetime = null) =>
        _app.Services.GetRequiredService<JwtIssuer>().Issue(user, role, user, lifetime ?? TimeSpan.FromHours(1));

    /// <summary>A WebSocket client that has sent CONNECT and received CONNECTED.</summary>
    /// <param name="http2">Open it over HTTP/2 only, on this invoker's connections (<see cref="StompTestClient.OpenAsync"/>).</param>
    public async Task<StompTestClient> ConnectAsync(string user, string role = "client", string heartBeat = "0,0", string subProtocol = "v12.stomp",
        HttpMessageInvoker? http2 = null)
    {
        var client = await StompTestClient.OpenAsync(WsUri, subProtocol, http2);
        await client.SendAsync($"CONNECT\naccept-version:1.0,1.1,1.2\nhost:localhost\nheart-beat:{heartBeat}\nAuthorization:Bearer {Token(user, role)}\n\n\0");
        var connected = await client.ReceiveAsync();
        Assert.Equal(StompCommand.Connected, connected.Command);
        return client;
    }

    /// <summary>Connects as soon as a place is free: a refusal 503 (a closed session holds its place until it has ended)
    /// is tried again for up to <see cref="StompTestClient.Timeout"/>.</summary>
    public async Task<StompTestClient> ConnectOncePlaceIsFreeAsync(string user, HttpMessageInvoker? http2 = null)
    {
        var deadline = DateTime.UtcNow + StompTestClient.Timeout;
        while (true)
        {
            try
            {
                return await ConnectAsync(user, http2: http2);
            }
            catch (WebSocketException ex) when (ex.Message == "refused 503" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    public Task StopAsync() => _app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await _app.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _database, _database + "-wal", _database + "-shm" }) File.Delete(file);
    }
}

/// <summary>A raw WebSocket STOMP client for tests: sends bytes in any split, parses what it receives; every wait is bounded.</summary>
public sealed class StompTestClient : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly ClientWebSocket _socket;
    private readonly StompFrameParser _parser = new(new StompLimits { MaxFrameBytes = 16 * 1024 * 1024, MaxBodyBytes = 16 * 1024 * 1024 });
    private readonly byte[] _receiveBuffer = new byte[64 * 1024];
    private byte[] _pending = [];

    private StompTestClient(ClientWebSocket socket) => _socket = socket;

    public ClientWebSocket Socket => _socket;
    public int HeartBeatsReceived { get; private set; }
    public WebSocketMessageType LastMessageType { get; private set; }

    /// <summary>Opens a WebSocket; one the server refuses throws a <see cref="WebSocketException"/> "refused NNN".</summary>
    /// <param name="http2">Open it over HTTP/2 only (RFC 8441), on this invoker's connections.</param>
    public static async Task<StompTestClient> OpenAsync(Uri uri, string? subProtocol = "v12.stomp", HttpMessageInvoker? http2 = null)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;       // a refusal's status
        if (subProtocol is not null) socket.Options.AddSubProtocol(subProtocol);
        if (http2 is not null)
        {
            socket.Options.HttpVersion = System.Net.HttpVersion.Version20;
            socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }
        try
        {
            await socket.ConnectAsync(uri, http2, CancellationToken.None).WaitAsync(Timeout);
        }
        catch (Exception ex)
        {
            var status = socket.HttpStatusCode;
            socket.Dispose();
            // A status that accepted the upgrade (101, or 200 over HTTP/2) is not a refusal: the handshake failed after it.
            if (ex is WebSocketException && status is not (0 or System.Net.HttpStatusCode.SwitchingProtocols or System.Net.HttpStatusCode.OK))
                throw new WebSocketException($"refused {(int)status}", ex);
            throw;
        }
        return new StompTestClient(socket);
    }

    public Task SendAsync(string wire, WebSocketMessageType type = WebSocketMessageType.Text) => SendAsync(Encoding.UTF8.GetBytes(wire), type);

    public async Task SendAsync(byte[] bytes, WebSocketMessageType type = WebSocketMessageType.Text) =>
        await _socket.SendAsync(bytes, type, true, CancellationToken.None).WaitAsync(Timeout);

    /// <summary>Sends the bytes as several WebSocket messages, cut at the given offsets.</summary>
    public async Task SendSplitAsync(byte[] bytes, params int[] cuts)
    {
        var start = 0;
        foreach (var cut in cuts.Append(bytes.Length))
        {
            await SendAsync(bytes[start..cut], WebSocketMessageType.Binary);
            start = cut;
        }
    }

    /// <summary>The next frame (heart-beats are counted and skipped).</summary>
    public async Task<StompFrame> ReceiveAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        while (true)
        {
            if (TryTakeFrame(out var frame)) return frame;
            var result = await _socket.ReceiveAsync(_receiveBuffer, cts.Token);
            if (result.MessageType == WebSocketMessageType.Close) throw new WebSocketException("closed: " + _socket.CloseStatus + " " + _socket.CloseStatusDescription);
            LastMessageType = result.MessageType;
            _pending = _pending.Length == 0 ? _receiveBuffer[..result.Count] : [.. _pending, .. _receiveBuffer.AsSpan(0, result.Count)];
        }
    }

    public async Task<StompFrame> ReceiveAsync(StompCommand expected)
    {
        var frame = await ReceiveAsync();
        Assert.True(frame.Command == expected, $"expected {expected}, got {frame.Command}: {frame.Headers["message"]} {frame.BodyText}");
        return frame;
    }

    /// <summary>Reads until a frame <paramref name="match"/> accepts; the frames before it are dropped.</summary>
    public async Task<StompFrame> ReceiveAsync(Func<StompFrame, bool> match)
    {
        while (true)
        {
            var frame = await ReceiveAsync();
            if (match(frame)) return frame;
        }
    }

    /// <summary>Reads until the RECEIPT for <paramref name="receiptId"/>, returning the frames that came before it.</summary>
    public async Task<List<StompFrame>> ReceiveUntilReceiptAsync(string receiptId)
    {
        var before = new List<StompFrame>();
        while (true)
        {
            var frame = await ReceiveAsync();
            if (frame.Command == StompCommand.Receipt && frame.Headers["receipt-id"] == receiptId) return before;
            Assert.False(frame.Command == StompCommand.Error, $"ERROR: {frame.Headers["message"]}");
            before.Add(frame);
        }
    }

    /// <summary>Asserts nothing but heart-beats arrives within <paramref name="quiet"/>.</summary>
    public async Task AssertNoFrameAsync(TimeSpan quiet)
    {
        try
        {
            var frame = await ReceiveAsync(quiet);
            Assert.Fail($"unexpected {frame.Command}: {frame.BodyText}");
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>Waits for the server to close the socket, returning the frames received before.</summary>
    public async Task<List<StompFrame>> ReceiveUntilClosedAsync(TimeSpan? timeout = null)
    {
        var frames = new List<StompFrame>();
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        try
        {
            while (true)
            {
                if (TryTakeFrame(out var frame)) { frames.Add(frame); continue; }
                var result = await _socket.ReceiveAsync(_receiveBuffer, cts.Token);
                if (result.MessageType == WebSocketMessageType.Close) return frames;
                _pending = [.. _pending, .. _receiveBuffer.AsSpan(0, result.Count)];
            }
        }
        catch (WebSocketException)
        {
            return frames;                                   // the server dropped the connection
        }
    }

    private bool TryTakeFrame(out StompFrame frame)
    {
        frame = null!;
        var beats = 0;
        while (beats < _pending.Length && _pending[beats] == (byte)'\n') beats++;
        HeartBeatsReceived += beats;
        _pending = _pending[beats..];
        var sequence = new ReadOnlySequence<byte>(_pending);
        var status = _parser.TryParse(ref sequence, out var error);
        if (status == OperationStatus.InvalidData) throw new InvalidDataException("server sent a bad frame: " + error);
        if (status == OperationStatus.NeedMoreData) return false;
        frame = _parser.Frame.ToFrame();
        _pending = sequence.ToArray();
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception ex) when (ex is WebSocketException or TimeoutException or OperationCanceledException) { }
        _socket.Dispose();
    }
}
