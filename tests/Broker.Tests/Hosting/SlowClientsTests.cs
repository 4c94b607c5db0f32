using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Hosting;

/// <summary><c>Broker:ConnectTimeoutMs</c> bounds how long a connection holds a descriptor before it is a STOMP session,
/// on either transport: one that sends nothing, one that stops half-way through its upgrade's head, one that sends its head
/// a byte at a time (slowloris: the time is not counted from its last byte) and a WebSocket that never sends
/// CONNECT are all closed at the timeout, and the broker goes on serving.</summary>
public sealed class SlowClientsTests
{
    private const int TimeoutMs = 1000;
    // The earliest close: the broker's clock starts at the accept, after the client's own; the timer may round down by a
    // tick. The latest: Kestrel checks its timeouts once a second, the scanner a quarter of the timeout; room for a busy
    // machine. It stays under the setting's default (10 s), so that a timeout left at the default still fails.
    private static readonly TimeSpan Earliest = TimeSpan.FromMilliseconds(TimeoutMs - 50);
    private static readonly TimeSpan Latest = TimeSpan.FromMilliseconds(TimeoutMs + 8000);

    [Theory]
    [InlineData("silent")]
    [InlineData("half a head")]
    [InlineData("a byte at a time")]
    public async Task A_request_head_not_whole_within_ConnectTimeoutMs_is_closed(string how)
    {
        await using var broker = await TestBroker.StartAsync($"Broker:ConnectTimeoutMs={TimeoutMs}");
        var head = Encoding.ASCII.GetBytes($"GET /ws HTTP/1.1\r\nHost: {broker.BaseUri.Authority}\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n");
        var started = Stopwatch.StartNew();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, broker.BaseUri.Port);
        var stream = tcp.GetStream();
        using var stop = new CancellationTokenSource();
        var sending = how switch
        {
            "silent" => Task.CompletedTask,
            "half a head" => stream.WriteAsync(head.AsMemory(0, head.Length / 2)).AsTask(),
            _ => TrickleAsync(stream, head, stop.Token),   // the whole head would take 20 s
        };

        var answer = await ReadUntilClosedAsync(stream);
        var closedAfter = started.Elapsed;
        await stop.CancelAsync();
        await sending;

        Assert.InRange(closedAfter, Earliest, Latest);
        // Closed without a word, or (the HTTP layer's way) after a 408.
        Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer);
        await using var client = await broker.ConnectAsync("after");
    }

    [Fact]
    public async Task A_WebSocket_that_never_sends_CONNECT_gets_an_ERROR_and_is_closed_at_ConnectTimeoutMs()
    {
        await using var broker = await TestBroker.StartAsync($"Broker:ConnectTimeoutMs={TimeoutMs}");
        var started = Stopwatch.StartNew();
        await using var silent = await StompTestClient.OpenAsync(broker.WsUri);

        var frames = await silent.ReceiveUntilClosedAsync(Latest + TimeSpan.FromSeconds(1));
        var closedAfter = started.Elapsed;

        var error = Assert.Single(frames);
        Assert.Equal(StompCommand.Error, error.Command);
        Assert.Equal("no CONNECT frame in time", error.Headers["message"]);
        Assert.InRange(closedAfter, Earliest, Latest);
        // The close answered, the session ends and is counted.
        try
        {
            await silent.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(StompTestClient.Timeout);
        }
        catch (WebSocketException) { }                              // the broker stopped waiting for the answer first
        await MetricsText.WaitForAsync(broker.BaseUri, "wsbroker_disconnects_total{reason=\"ConnectTimeout\"}", 1,
            "the disconnect is counted as ConnectTimeout");
        await using var client = await broker.ConnectAsync("after");
    }

    private static async Task TrickleAsync(NetworkStream stream, byte[] head, CancellationToken stop)
    {
        try
        {
            for (var i = 0; i < head.Length; i++)
            {
                await stream.WriteAsync(head.AsMemory(i, 1), stop);
                await Task.Delay(100, stop);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException) { }   // closed under it, or stopped
    }

    // What the server sent until it closed the connection (a reset counts as a close); bounded by Latest and a second.
    private static async Task<string> ReadUntilClosedAsync(NetworkStream stream)
    {
        var received = new StringBuilder();
        var buffer = new byte[1024];
        using var deadline = new CancellationTokenSource(Latest + TimeSpan.FromSeconds(1));
        try
        {
            while (true)
            {
                var read = await stream.ReadAsync(buffer, deadline.Token);
                if (read == 0) return received.ToString();
                received.Append(Encoding.Latin1.GetString(buffer, 0, read));
            }
        }
        catch (IOException)
        {
            return received.ToString();
        }
    }
}
