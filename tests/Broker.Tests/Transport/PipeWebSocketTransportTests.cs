using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Transport;

/// <summary>RFC 6455 framing of <see cref="PipeWebSocketTransport"/> over in-memory pipes: what a session reads, what the
/// client receives (pongs, close replies, close codes for bad input), fed whole, split at every offset and byte by byte.</summary>
public class PipeWebSocketTransportTests
{
    private static readonly byte[] s_e = Encoding.UTF8.GetBytes("é");

    // A STOMP-like stream: frames end in NUL and cross WebSocket frames and messages; a ping comes between fragments, and a
    // two-byte character is split between two fragments.
    private static byte[] Conversation() =>
    [
        .. WebSocketPeer.Frame(WebSocketOpcode.Text, [.. "SEND\n\nh"u8, s_e[0]], fin: false),
        .. WebSocketPeer.Frame(WebSocketOpcode.Ping, "p1"u8),
        .. WebSocketPeer.Frame(WebSocketOpcode.Continuation, [s_e[1], .. "llo\0SEND\n\nwor"u8], fin: false),
        .. WebSocketPeer.Frame(WebSocketOpcode.Continuation, "ld\0"u8),
        .. WebSocketPeer.Frame(WebSocketOpcode.Binary, "A\0B"u8),
        .. WebSocketPeer.Frame(WebSocketOpcode.Binary, "C\0"u8),
        .. WebSocketPeer.Frame(WebSocketOpcode.Text, []),
        .. WebSocketPeer.Close(1000, "bye"u8.ToArray()),
    ];

    private static readonly string[] s_conversationFrames = ["SEND\n\nhéllo", "SEND\n\nworld", "A", "BC"];

    [Fact]
    public async Task ReadAsync_ConversationWhole_DeliversStompFramesAndAnswersPingAndClose()
    {
        var peer = new WebSocketPeer();
        var session = ReadNulFramesAsync(peer.Server);
        await peer.SendAsync(Conversation());
        Assert.Equal(s_conversationFrames, await session.WaitAsync(WebSocketPeer.Timeout));
        Assert.Equal((WebSocketOpcode.Pong, "p1"), await NextAsync(peer));
        Assert.Equal(1000, await peer.ReceiveCloseAsync());          // the client's status, echoed
        Assert.False(peer.Server.IsCarrying, "everything consumed: no buffer held");
    }

    [Fact]
    public async Task ReadAsync_ConversationSplitAtEveryOffset_DeliversTheSame()
    {
        var bytes = Conversation();
        for (var at = 0; at <= bytes.Length; at++)
        {
            var peer = new WebSocketPeer();
            var session = ReadNulFramesAsync(peer.Server);
            await peer.SendAsync(bytes, at);
            Assert.Equal(s_conversationFrames, await session.WaitAsync(WebSocketPeer.Timeout));
            Assert.Equal((WebSocketOpcode.Pong, "p1"), await NextAsync(peer));
            Assert.Equal(1000, await peer.ReceiveCloseAsync());
        }
    }

    [Fact]
    public async Task ReadAsync_AfterAWaitOnTheWaitablePipe_ConversationSplitAtEveryOffset_DeliversTheSame()
    {
        var bytes = Conversation();
        for (var at = 0; at <= bytes.Length; at++)
        {
            var peer = new WebSocketPeer();
            Assert.NotNull(peer.Server.Waitable);                          // nothing carried: the pump may wait on the pipe
            var session = ReadNulFramesAsync(peer.Server, waitFirst: true);
            await peer.SendAsync(bytes, at);
            Assert.Equal(s_conversationFrames, await session.WaitAsync(WebSocketPeer.Timeout));
            Assert.Equal((WebSocketOpcode.Pong, "p1"), await NextAsync(peer));
            Assert.Equal(1000, await peer.ReceiveCloseAsync());
            Assert.Null(peer.Server.Waitable);                             // closed: nothing more to wait for
        }
    }

    [Fact]
    public async Task ReadAsync_ConversationOneBytePerRead_DeliversTheSame()
    {
        var bytes = Conversation();
        var peer = new WebSocketPeer();
        var session = ReadNulFramesAsync(peer.Server);
        await peer.SendAsync(bytes, [.. Enumerable.Range(1, bytes.Length - 1)]);
        Assert.Equal(s_conversationFrames, await session.WaitAsync(WebSocketPeer.Timeout));
        Assert.Equal(1000, await peer.ReceiveCloseAsync());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(125)]                                  // 7-bit length
    [InlineData(126)]                                  // 16-bit length
    [InlineData(65535)]
    [InlineData(65536)]                                // 64-bit length
    [InlineData(200_000)]
    public async Task ReadAsync_WholeMessagesOfEachLengthEncoding_ArriveUnmasked(int length)
    {
        var payload = Enumerable.Range(0, length).Select(i => (byte)('a' + i % 26)).ToArray();
        var peer = new WebSocketPeer();
        var session = ReadMessagesAsync(peer.Server);
        // Fragmented too: the same bytes as three frames, with a ping between the fragments.
        var third = length / 3;
        await peer.SendAsync([.. WebSocketPeer.Frame(WebSocketOpcode.Text, payload),
            .. WebSocketPeer.Frame(WebSocketOpcode.Binary, payload[..third], fin: false),
            .. WebSocketPeer.Frame(WebSocketOpcode.Ping, []),
            .. WebSocketPeer.Frame(WebSocketOpcode.Continuation, payload[third..(2 * third)], fin: false),
            .. WebSocketPeer.Frame(WebSocketOpcode.Continuation, payload[(2 * third)..]),
            .. WebSocketPeer.Close(1001)], 7, 9000);
        var messages = await session.WaitAsync(WebSocketPeer.Timeout);
        Assert.Equal(2, messages.Count);
        Assert.All(messages, m => Assert.Equal(payload, m));
        Assert.Equal(1001, await peer.ReceiveCloseAsync());
    }

    public static TheoryData<string, byte[], int> BadInputs()
    {
        var data = new TheoryData<string, byte[], int>
        {
            { "unmasked client frame", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, masked: false), 1002 },
            { "RSV1 without an extension", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0xC1), 1002 },
            { "RSV3", WebSocketPeer.Frame(WebSocketOpcode.Binary, "hi"u8, first: 0x92), 1002 },
            { "reserved data opcode", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0x83), 1002 },
            { "reserved control opcode", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0x8F), 1002 },
            { "64-bit length with the high bit", WebSocketPeer.Frame(WebSocketOpcode.Binary, [], length64: ulong.MaxValue), 1002 },
            { "ping over 125 bytes", WebSocketPeer.Frame(WebSocketOpcode.Ping, new byte[126]), 1002 },
            { "fragmented ping", WebSocketPeer.Frame(WebSocketOpcode.Ping, "x"u8, fin: false), 1002 },
            { "continuation without a start", WebSocketPeer.Frame(WebSocketOpcode.Continuation, "x"u8), 1002 },
            { "new message inside a fragmented one",
                [.. WebSocketPeer.Frame(WebSocketOpcode.Text, "a"u8, fin: false), .. WebSocketPeer.Frame(WebSocketOpcode.Binary, "b"u8)], 1002 },
            { "close with a one-byte payload", WebSocketPeer.Frame(WebSocketOpcode.Close, [3]), 1002 },
            { "invalid UTF-8 in a text frame", WebSocketPeer.Frame(WebSocketOpcode.Text, [0x61, 0xC3, 0x28]), 1007 },
            { "invalid UTF-8 across fragments", [.. WebSocketPeer.Frame(WebSocketOpcode.Text, [0xE2, 0x82], fin: false),
                .. WebSocketPeer.Frame(WebSocketOpcode.Continuation, [0x28])], 1007 },
            { "text message ending inside a character", WebSocketPeer.Frame(WebSocketOpcode.Text, [0x61, 0xE2, 0x82]), 1007 },
            { "text message ending inside a character, fragmented", [.. WebSocketPeer.Frame(WebSocketOpcode.Text, "ab"u8, fin: false),
                .. WebSocketPeer.Frame(WebSocketOpcode.Continuation, [0xF0, 0x9D])], 1007 },
            { "surrogate in a text frame", WebSocketPeer.Frame(WebSocketOpcode.Text, [0xED, 0xA0, 0x80]), 1007 },
            { "invalid UTF-8 in a close reason", WebSocketPeer.Close(1000, [0xFF, 0xFE]), 1007 },
        };
        foreach (var code in new ushort[] { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 })
            data.Add($"close code {code}", WebSocketPeer.Close(code), 1002);
        return data;
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public async Task ReadAsync_BadInput_ClosesWithItsCodeAndFails(string name, byte[] bytes, int code)
    {
        foreach (var cuts in new[] { Array.Empty<int>(), [.. Enumerable.Range(1, bytes.Length - 1)] })
        {
            var peer = new WebSocketPeer();
            var session = ReadNulFramesAsync(peer.Server);
            // A valid frame first: the failure comes after a message was read.
            await peer.SendAsync([.. WebSocketPeer.Frame(WebSocketOpcode.Text, "ok\0"u8), .. bytes], cuts);
            await Assert.ThrowsAsync<WebSocketException>(() => session.WaitAsync(WebSocketPeer.Timeout));
            Assert.True(code == await peer.ReceiveCloseAsync(), name);
        }
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(1001)]
    [InlineData(1003)]
    [InlineData(1007)]
    [InlineData(1011)]
    [InlineData(1012)]
    [InlineData(3000)]
    [InlineData(4999)]
    public async Task ReadAsync_ValidCloseCode_IsEchoedAndEndsTheReads(int code)
    {
        var peer = new WebSocketPeer();
        var session = ReadNulFramesAsync(peer.Server);
        await peer.SendAsync(WebSocketPeer.Close((ushort)code, "done"u8.ToArray()));
        Assert.Empty(await session.WaitAsync(WebSocketPeer.Timeout));
        Assert.Equal(code, await peer.ReceiveCloseAsync());
    }

    [Fact]
    public async Task ReadAsync_CloseWithoutStatus_IsAnsweredWithoutStatus()
    {
        var peer = new WebSocketPeer();
        var session = ReadNulFramesAsync(peer.Server);
        await peer.SendAsync(WebSocketPeer.Frame(WebSocketOpcode.Close, []));
        await session.WaitAsync(WebSocketPeer.Timeout);
        Assert.Equal((WebSocketOpcode.Close, ""), await NextAsync(peer));
    }

    [Fact]
    public async Task ReadAsync_InvalidUtf8InABinaryFrame_IsData()
    {
        var peer = new WebSocketPeer();
        var session = ReadMessagesAsync(peer.Server);
        await peer.SendAsync([.. WebSocketPeer.Frame(WebSocketOpcode.Binary, [0xFF, 0xC3]), .. WebSocketPeer.Close(1000)]);
        Assert.Equal([0xFF, 0xC3], Assert.Single(await session.WaitAsync(WebSocketPeer.Timeout)));
    }

    [Fact]
    public async Task ReadAsync_ClientDropsWithoutClose_Fails()
    {
        var peer = new WebSocketPeer();
        var session = ReadNulFramesAsync(peer.Server);
        await peer.SendAsync(WebSocketPeer.Frame(WebSocketOpcode.Text, "SEND\n\nhalf"u8));
        peer.EndOfStream();
        var error = await Assert.ThrowsAsync<WebSocketException>(() => session.WaitAsync(WebSocketPeer.Timeout));
        Assert.Equal(WebSocketError.ConnectionClosedPrematurely, error.WebSocketErrorCode);
    }

    [Fact]
    public async Task ReadAsync_ClientEndsInsideAFrame_HandsOverWhatCameOnce_ThenFails()
    {
        // A frame that announces 100 bytes; the client sends 30 of them (one whole STOMP frame, the start of another) and
        // closes its side. The session consumes the whole frame and leaves the rest: it must not be handed the rest forever.
        var payload = "SEND\n\nhi\0SEND\n\n"u8.ToArray().Concat(Enumerable.Repeat((byte)'x', 100 - 15)).ToArray();
        var peer = new WebSocketPeer();
        await peer.SendAsync(WebSocketPeer.Frame(WebSocketOpcode.Text, payload)[..(2 + 4 + 30)]);
        peer.EndOfStream();
        var frames = new List<string>();
        var reads = 0;
        var error = await Assert.ThrowsAsync<WebSocketException>(async () =>
        {
            while (++reads <= 100)
            {
                var read = await peer.Server.ReadAsync(CancellationToken.None).AsTask().WaitAsync(WebSocketPeer.Timeout);
                if (read.IsCompleted) return;
                var buffer = read.Buffer;
                while (buffer.PositionOf((byte)0) is { } nul)
                {
                    frames.Add(Encoding.UTF8.GetString(buffer.Slice(0, nul)));
                    buffer = buffer.Slice(buffer.GetPosition(1, nul));
                }
                peer.Server.AdvanceTo(buffer.Start);
            }
        });
        Assert.Equal(WebSocketError.ConnectionClosedPrematurely, error.WebSocketErrorCode);
        Assert.Equal(["SEND\n\nhi"], frames);
        Assert.Equal(2, reads);                                          // the bytes once, then the end
    }

    [Theory]
    [InlineData(0)]
    [InlineData(125)]
    [InlineData(126)]
    [InlineData(65535)]
    [InlineData(65536)]
    public async Task SendAsync_WritesOneUnmaskedFinalFrame(int length)
    {
        var peer = new WebSocketPeer();
        var payload = Enumerable.Range(0, length).Select(i => (byte)i).ToArray();
        await peer.Server.SendAsync(payload, binary: true, CancellationToken.None);
        await peer.Server.SendAsync("text"u8.ToArray(), binary: false, CancellationToken.None);
        var (opcode, fin, received) = await peer.ReceiveAsync();
        Assert.Equal((WebSocketOpcode.Binary, true), (opcode, fin));
        Assert.Equal(payload, received);
        Assert.Equal((WebSocketOpcode.Text, "text"), await NextAsync(peer));
    }

    [Fact]
    public async Task TrySendNow_WhenNoSendIsUnderWay_SendsOneTextFrameAtOnce_ElseLeavesItToTheCaller()
    {
        var peer = new WebSocketPeer();
        Assert.True(peer.Server.TrySendNow("\n"u8));
        Assert.Equal((WebSocketOpcode.Text, "\n"), await NextAsync(peer));

        Assert.True(peer.Server.TryEnterWrite());                  // another send holds the gate: nothing is sent
        Assert.False(peer.Server.TrySendNow("\n"u8));
        peer.Server.ExitWrite();
        await peer.Server.SendAsync("after"u8.ToArray(), binary: false, CancellationToken.None);
        Assert.Equal((WebSocketOpcode.Text, "after"), await NextAsync(peer));   // the refused one never went out

        await peer.Server.CloseAsync(DisconnectReason.ClientClosed, CancellationToken.None);
        Assert.False(peer.Server.TrySendNow("\n"u8));              // closing: the caller's queue decides (it is completed)
    }

    [Fact]
    public async Task ReadAsync_PingsFromAClientThatDoesNotRead_DropTheConnectionAtTheBound()
    {
        // The read side answers pings itself: its pong's flush is on no clock of the session's. A client that pings and never
        // reads must not park the read loop (and hold the output buffer) for good.
        var (peer, read) = await PingsUnreadAsync(TimeSpan.FromMilliseconds(200));
        var error = await Assert.ThrowsAsync<WebSocketException>(() => read.WaitAsync(WebSocketPeer.Timeout));
        Assert.Equal(WebSocketError.ConnectionClosedPrematurely, error.WebSocketErrorCode);
        Assert.True(peer.WasAborted);
    }

    [Fact]
    public async Task WriterWaitingBehindAPongGivenUpOn_IsToldTheConnectionIsClosing_AndSendsNothing()
    {
        // The pong's flush is given up on while still pending: the writer that was waiting for the gate must not write and
        // flush the same output again (a second flush at once: "concurrent reads or writes", logged as a failure).
        var (peer, read) = await PingsUnreadAsync(TimeSpan.FromMilliseconds(300));
        // Until the second pong's flush, the one the client does not take, holds the gate. The first pong's flush completes
        // at once: a send that caught the gate in that brief hold could go before the second pong, and go out (CI, f0ce751).
        Assert.True(SpinWait.SpinUntil(() => peer.ServerFlushThreads.Count >= 2, WebSocketPeer.Timeout));
        var send = peer.Server.SendAsync("MESSAGE"u8.ToArray(), binary: false, CancellationToken.None).AsTask();
        await Assert.ThrowsAsync<WebSocketException>(() => read.WaitAsync(WebSocketPeer.Timeout));
        var refused = await Assert.ThrowsAsync<WebSocketException>(() => send.WaitAsync(WebSocketPeer.Timeout));
        Assert.Equal(WebSocketError.InvalidState, refused.WebSocketErrorCode);
    }

    // Ten pings from a client that takes 200 bytes of the server's output and no more; the read that answers them.
    private static async Task<(WebSocketPeer Peer, Task<TransportReadResult> Read)> PingsUnreadAsync(TimeSpan controlSendTimeout)
    {
        var peer = new WebSocketPeer(clientReadsUpTo: 200, controlSendTimeout: controlSendTimeout);
        var ping = WebSocketPeer.Frame(WebSocketOpcode.Ping, new byte[100]);
        await peer.SendAsync([.. Enumerable.Range(0, 10).SelectMany(_ => ping)]);
        return (peer, peer.Server.ReadAsync(CancellationToken.None).AsTask());
    }

    [Theory]
    [InlineData(DisconnectReason.ClientClosed, 1000)]
    [InlineData(DisconnectReason.ProtocolError, 1008)]
    [InlineData(DisconnectReason.MessageTooBig, 1009)]
    [InlineData(DisconnectReason.ServerShutdown, 1001)]
    [InlineData(DisconnectReason.BackplaneGap, 1012)]
    public async Task CloseAsync_SendsTheReasonsStatus_ThenReadsUntilTheClientsClose(DisconnectReason reason, int code)
    {
        var peer = new WebSocketPeer();
        await peer.Server.CloseAsync(reason, CancellationToken.None);
        Assert.Equal(code, await peer.ReceiveCloseAsync());
        await Assert.ThrowsAsync<WebSocketException>(() => peer.Server.SendAsync("late"u8.ToArray(), false, CancellationToken.None).AsTask());
        // The client still had a message under way, then answers the close: FinishAsync drops the one, stops at the other.
        await peer.SendAsync([.. WebSocketPeer.Frame(WebSocketOpcode.Text, "in flight"u8), .. WebSocketPeer.Close((ushort)code)]);
        await peer.Server.FinishAsync(WebSocketPeer.Timeout).WaitAsync(WebSocketPeer.Timeout / 2);
        Assert.Equal(TransportReadResult.Completed, await peer.Server.ReadAsync(CancellationToken.None));
    }

    [Fact]
    public async Task FinishAsync_ClientNeverAnswersTheClose_GivesUpAtTheTimeout()
    {
        var peer = new WebSocketPeer();
        await peer.Server.CloseAsync(DisconnectReason.ServerShutdown, CancellationToken.None);
        await peer.Server.FinishAsync(TimeSpan.FromMilliseconds(100)).WaitAsync(WebSocketPeer.Timeout);
        Assert.False(peer.WasAborted);
    }

    [Fact]
    public async Task Abort_PendingRead_FailsAndAbortsTheConnection()
    {
        var peer = new WebSocketPeer();
        var read = peer.Server.ReadAsync(CancellationToken.None).AsTask();
        peer.Server.Abort();
        await Assert.ThrowsAsync<WebSocketException>(() => read.WaitAsync(WebSocketPeer.Timeout));
        Assert.True(peer.WasAborted);
    }

    [Fact]
    public async Task KeepAlive_TickedByTheScanner_PingsWhenDueAndDropsAClientThatSendsNothing()
    {
        var peer = new WebSocketPeer();
        var read = peer.Server.ReadAsync(CancellationToken.None).AsTask();
        var start = Environment.TickCount64;
        peer.Server.StartKeepAlive(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3));
        peer.Server.KeepAlive(start + 2_000);                   // the scanner's tick: an interval passed, within the timeout
        Assert.Equal((WebSocketOpcode.Ping, ""), await NextAsync(peer));
        Assert.False(peer.WasAborted);
        peer.Server.KeepAlive(start + 60_000);                  // silent past the timeout
        await Assert.ThrowsAsync<WebSocketException>(() => read.WaitAsync(WebSocketPeer.Timeout));
        Assert.True(peer.WasAborted);
    }

    private static async Task<(WebSocketOpcode, string)> NextAsync(WebSocketPeer peer)
    {
        var (opcode, _, payload) = await peer.ReceiveAsync();
        return (opcode, Encoding.UTF8.GetString(payload));
    }

    // A session like STOMP's: the bytes are one stream; it consumes whole NUL-terminated frames and leaves a partial one.
    // waitFirst: as the pump does, it waits on the transport's Waitable pipe before each read and leaves what came unexamined.
    private static async Task<List<string>> ReadNulFramesAsync(IConnectionTransport transport, bool waitFirst = false)
    {
        var frames = new List<string>();
        while (true)
        {
            if (waitFirst && transport.Waitable is { } input)
            {
                var ready = await input.ReadAsync();
                input.AdvanceTo(ready.Buffer.Start, ready.Buffer.Start);
            }
            var read = await transport.ReadAsync(CancellationToken.None);
            if (read.IsCompleted) return frames;
            var buffer = read.Buffer;
            while (buffer.PositionOf((byte)0) is { } nul)
            {
                frames.Add(Encoding.UTF8.GetString(buffer.Slice(0, nul)));
                buffer = buffer.Slice(buffer.GetPosition(1, nul));
            }
            transport.AdvanceTo(buffer.Start);
        }
    }

    // A session like a raw topic URL's: it takes whole messages only.
    private static async Task<List<byte[]>> ReadMessagesAsync(IConnectionTransport transport)
    {
        var messages = new List<byte[]>();
        while (true)
        {
            var read = await transport.ReadAsync(CancellationToken.None);
            if (read.IsCompleted) return messages;
            if (!read.EndOfMessage)
            {
                transport.AdvanceTo(read.Buffer.Start);
                continue;
            }
            messages.Add(read.Buffer.ToArray());
            transport.AdvanceTo(read.Buffer.End);
        }
    }
}
