using System.Buffers;
using System.Text;
using WsBroker.Broker.Hosting;

namespace WsBroker.Broker.Tests.Hosting;

/// <summary>What the pipeline transport's connection middleware takes from a connection's first bytes, and what it leaves
/// to Kestrel's HTTP layer untouched.</summary>
public class UpgradeRequestTests
{
    private const int MaxBytes = 40 * 1024;
    private const int MaxHeaders = 100;

    private static string Upgrade(string target = "/ws", string extra = "", string version = "13", string key = "dGhlIHNhbXBsZSBub25jZQ==") =>
        $"GET {target} HTTP/1.1\r\nHost: broker:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        + $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n";

    private static UpgradePeek Peek(string head, out UpgradeRequest? request, out long consumed, int maxBytes = MaxBytes, long searched = 0)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(head));
        var peek = UpgradeRequest.Peek(buffer, maxBytes, MaxHeaders, out request, out var end, searched);
        consumed = buffer.Slice(0, end).Length;
        return peek;
    }

    [Fact]
    public void Peek_StompUpgrade_TakesKeyProtocolsAndToken_AndEndsAtTheBlankLine()
    {
        var head = Upgrade("/ws?access_token=a.b%2Bc", "Sec-WebSocket-Protocol: v11.stomp, v12.stomp\r\nsec-websocket-protocol: v10.stomp\r\n");
        Assert.Equal(UpgradePeek.Ours, Peek(head + "\x81\x85", out var request, out var consumed));
        Assert.Equal(head.Length, consumed);                          // the frame bytes after the head are left
        Assert.Equal("dGhlIHNhbXBsZSBub25jZQ==", request!.Key);
        Assert.Null(request.RawPath);
        Assert.Equal(["v11.stomp", "v12.stomp", "v10.stomp"], request.Protocols);
        Assert.Equal("a.b+c", request.Query("access_token"));
        Assert.Null(request.Query("since"));
    }

    [Fact]
    public void Peek_RawTopicUrl_TakesThePathSinceAndBearer()
    {
        Assert.Equal(UpgradePeek.Ours, Peek(Upgrade("/ws/topic/private-chat/admin1/client1?since=42", "Authorization: Bearer t0k\r\n"), out var request, out _));
        Assert.Equal("private-chat/admin1/client1", request!.RawPath);
        Assert.Equal("42", request.Query("since"));
        Assert.Equal("Bearer t0k", request.Authorization);
    }

    [Fact]
    public void Peek_HeadSplitAtEveryOffset_WaitsThenTakesIt()
    {
        var head = Upgrade("/ws/topic/a");
        for (var at = 0; at < head.Length; at++)
            Assert.Equal(UpgradePeek.NeedMoreData, Peek(head[..at], out _, out _));
        Assert.Equal(UpgradePeek.Ours, Peek(head, out _, out _));
    }

    [Fact]
    public void Peek_HeadArrivingAByteAtATime_SearchesOnlyWhatIsNew_AndTakesTheSameHead()
    {
        // Each call is told how much the one before searched (as the endpoint does): the blank line that ends the head is
        // found across the boundary, wherever the boundary falls in it.
        var head = Upgrade("/ws/topic/a", "X-Pad: " + new string('p', 300) + "\r\n");
        for (var at = 1; at < head.Length; at++)
            Assert.Equal(UpgradePeek.NeedMoreData, Peek(head[..at], out _, out _, searched: at - 1));
        for (var back = 1; back <= 4; back++)
        {
            Assert.Equal(UpgradePeek.Ours, Peek(head + "\x81", out var request, out var consumed, searched: head.Length - back));
            Assert.Equal(head.Length, consumed);
            Assert.Equal("a", request!.RawPath);
        }
    }

    [Theory]
    [InlineData("GET /ws HTTP/1.1\nHost: b\n")]
    [InlineData("GET /ws HTTP/1.1\r\nHost: b\nUpgrade: websocket\r\n")]
    [InlineData("GET /ws HTTP/1.1\r\nHost: b\r\n\n")]
    public void Peek_LineEndingInLineFeedAlone_IsLeftToKestrelAtOnce(string head)
    {
        // Kestrel takes LF as a line end; waiting for CRLF CRLF would hold the connection until the header timeout.
        Assert.Equal(UpgradePeek.NotOurs, Peek(head, out _, out _));
        var split = Enumerable.Range(1, head.Length - 1).First(i => head[i] == '\n' && head[i - 1] != '\r');   // the first
        Assert.Equal(UpgradePeek.NeedMoreData, Peek(head[..split], out _, out _));
        Assert.Equal(UpgradePeek.NotOurs, Peek(head, out _, out _, searched: split));   // the LF is new, its CR-less byte is not
    }

    [Theory]
    [InlineData("[::1]:8080")]
    [InlineData("127.0.0.1")]
    [InlineData("broker.example")]
    [InlineData("xn--brker-jua.example:443")]
    public void Peek_HostsKestrelTakes_AreTaken(string host) =>
        Assert.Equal(UpgradePeek.Ours, Peek(Upgrade().Replace("Host: broker:8080", "Host: " + host, StringComparison.Ordinal), out _, out _));

    [Fact]
    public void Peek_FirstFrameInTheSameRead_ItsLineFeedsAreNotTheHeads()
    {
        // A masked frame whose bytes hold 0x0A with no CR before it, right after the head.
        var head = Upgrade("/ws");
        Assert.Equal(UpgradePeek.Ours, Peek(head + "\x81\x85\x0a\x00\x0a\x0a\x0a", out _, out var consumed));
        Assert.Equal(head.Length, consumed);
        Assert.Equal(UpgradePeek.Ours, Peek(head + "\x81\x85\x0a\x00\x0a\x0a\x0a", out _, out consumed, searched: head.Length - 2));
        Assert.Equal(head.Length, consumed);
    }

    [Fact]
    public void Peek_CarriageReturnSearchedBefore_LineFeedNew_IsALineEnd()
    {
        var head = Upgrade("/ws");
        var cr = head.IndexOf('\r');
        Assert.Equal(UpgradePeek.NeedMoreData, Peek(head[..(cr + 2)], out _, out _, searched: cr + 1));
        Assert.Equal(UpgradePeek.Ours, Peek(head, out _, out _, searched: cr + 1));
    }

    [Theory]
    [InlineData("GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n")]
    [InlineData("POST /ws HTTP/1.1\r\nHost: b\r\n\r\n")]
    [InlineData("GET /metrics HTTP/1.1\r\n")]                      // undecided bytes are not needed: the prefix decides
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")]
    [InlineData("\x16\x03\x01\x02\x00")]                            // a TLS client hello
    [InlineData("GET /wsx HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\n\r\n")]
    [InlineData("GET /ws HTTP/1.1\r\nHost: b\r\n\r\n")]            // GET /ws without an upgrade: ASP.NET Core answers 400
    public void Peek_NotAWebSocketUpgradeOfOurs_IsLeftToKestrel(string head) => Assert.Equal(UpgradePeek.NotOurs, Peek(head, out _, out _));

    public static TheoryData<string, string> Unusual => new()
    {
        { "version 12", Upgrade(version: "12") },
        { "short key", Upgrade(key: "c2hvcnQ=") },
        { "HTTP/1.0", Upgrade().Replace("HTTP/1.1", "HTTP/1.0", StringComparison.Ordinal) },
        { "percent-encoded path", Upgrade("/ws/topic/a%2Fb") },
        { "dot segment", Upgrade("/ws/topic/../x") },
        { "other case", Upgrade("/WS") },
        { "a body", Upgrade(extra: "Content-Length: 5\r\n") },
        { "no Host", Upgrade().Replace("Host: broker:8080\r\n", "", StringComparison.Ordinal) },
        { "Host with a space and a slash", Upgrade().Replace("Host: broker:8080", "Host: a b/c", StringComparison.Ordinal) },
        { "Host with user info", Upgrade().Replace("Host: broker:8080", "Host: user@broker:8080", StringComparison.Ordinal) },
        { "no Upgrade token", Upgrade().Replace("Upgrade: websocket", "Upgrade: h2c", StringComparison.Ordinal) },
        { "folded header line", Upgrade(extra: "X-A: 1\r\n  continued\r\n") },
        { "space before the colon", Upgrade(extra: "X-A : 1\r\n") },
        { "bare LF", Upgrade(extra: "X-A: 1\nX-B: 2\r\n") },
        { "non-ASCII byte", Upgrade(extra: "X-A: \u00e9\r\n") },
        { "two Host lines", Upgrade(extra: "Host: other\r\n") },
        { "two keys", Upgrade(extra: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") },
        { "two versions", Upgrade(extra: "Sec-WebSocket-Version: 13\r\n") },
        { "a chunked body", Upgrade(extra: "Transfer-Encoding: chunked\r\n") },
        { "Connection without the upgrade token", Upgrade().Replace("keep-alive, Upgrade", "keep-alive, Upgrades", StringComparison.Ordinal) },
        { "double space in the request line", Upgrade().Replace("GET /ws", "GET  /ws", StringComparison.Ordinal) },
        { "a third part in the request line", Upgrade().Replace("HTTP/1.1", "HTTP/1.1 x", StringComparison.Ordinal) },
        { "no field name", Upgrade(extra: ": x\r\n") },
        { "tab before the colon", Upgrade(extra: "X-A\t: 1\r\n") },
        { "bare CR", Upgrade(extra: "X-A: 1\rX-B: 2\r\n") },
        { "a fragment", Upgrade("/ws#x") },
        { "key that is not base64", Upgrade(key: "not base64 at all!!!!!!!") },
    };

    [Theory]
    [MemberData(nameof(Unusual))]
    public void Peek_UnusualUpgrade_IsLeftToKestrelAndAspNetCore(string name, string head) =>
        Assert.True(Peek(head, out _, out _) == UpgradePeek.NotOurs, name);

    // Field names in any case, lists with odd spacing and empty entries, several lines of one field, a head in several
    // segments: what is taken is the same.
    [Fact]
    public void Peek_FieldsInAnyCaseAndSpacing_AcrossSegments_AreTakenAsOne()
    {
        var head = "GET /ws HTTP/1.1\r\nhOsT: b\r\nUPGRADE:  WebSocket \r\nconnection:Upgrade\r\n"
            + "sec-websocket-key:\tdGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n"
            + "Sec-WebSocket-Protocol: ,v12.stomp ,, custom\r\nSec-WebSocket-Protocol: v10.stomp\r\n"
            + "Authorization: Bearer first\r\nauthorization: Bearer second\r\n\r\n";
        var bytes = Encoding.Latin1.GetBytes(head);
        var first = new Segment(bytes.AsMemory(0, 20));
        var last = first.Append(bytes.AsMemory(20, 70)).Append(bytes.AsMemory(90));
        var buffer = new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
        Assert.Equal(UpgradePeek.Ours, UpgradeRequest.Peek(buffer, MaxBytes, MaxHeaders, out var request, out var end));
        Assert.Equal(bytes.Length, buffer.Slice(0, end).Length);
        Assert.Equal("dGhlIHNhbXBsZSBub25jZQ==", request!.Key);
        Assert.Equal(["v12.stomp", "custom", "v10.stomp"], request.Protocols);
        Assert.Equal("Bearer first", request.Authorization);
        Assert.Null(request.Query("access_token"));
    }

    [Fact]
    public void Peek_MoreFieldLinesThanTheLimit_IsLeftToKestrel()
    {
        var extra = string.Concat(Enumerable.Range(0, MaxHeaders - 5).Select(i => $"X-{i}: v\r\n"));
        Assert.Equal(UpgradePeek.Ours, Peek(Upgrade(extra: extra), out _, out _));                 // 5 + 95 = the limit
        Assert.Equal(UpgradePeek.NotOurs, Peek(Upgrade(extra: extra + "X-Last: v\r\n"), out _, out _));
    }

    // The key and accept value are RFC 6455 section 1.3's example.
    [Fact]
    public void WriteSwitchingProtocols_WritesTheAcceptAndTheChosenSubprotocol()
    {
        var output = new ArrayBufferWriter<byte>();
        UpgradeResponses.WriteSwitchingProtocols(output, "dGhlIHNhbXBsZSBub25jZQ==", "v12.stomp");
        Assert.Equal("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n", Encoding.ASCII.GetString(output.WrittenSpan));
        output.Clear();
        UpgradeResponses.WriteSwitchingProtocols(output, "dGhlIHNhbXBsZSBub25jZQ==", null);
        Assert.EndsWith("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", Encoding.ASCII.GetString(output.WrittenSpan));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }

    [Fact]
    public void Peek_HeadOverTheLimit_IsLeftToKestrel()
    {
        var head = Upgrade(extra: "X-Big: " + new string('x', 600) + "\r\n");
        Assert.Equal(UpgradePeek.NotOurs, Peek(head, out _, out _, maxBytes: 512));
        Assert.Equal(UpgradePeek.NotOurs, Peek(head[..520], out _, out _, maxBytes: 512));   // no end in sight
    }
}
