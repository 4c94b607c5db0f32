using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Transport;

/// <summary>The pure parts of the RFC 6455 codec: client frame headers, masking, incremental UTF-8, server headers.</summary>
public class WebSocketCodecTests
{
    [Theory]
    [InlineData(0, 6)]
    [InlineData(125, 6)]                       // 7-bit length
    [InlineData(126, 8)]                       // 16-bit length
    [InlineData(65535, 8)]
    [InlineData(65536, 14)]                    // 64-bit length
    public void TryRead_EachLengthEncoding_ReadsLengthAndHeaderSize(int length, int headerLength)
    {
        var frame = WebSocketPeer.Frame(WebSocketOpcode.Binary, new byte[length]);
        Assert.Equal(OperationStatus.Done, WebSocketFrameHeader.TryRead(new ReadOnlySequence<byte>(frame), out var header, out _));
        Assert.Equal((true, WebSocketOpcode.Binary, (long)length, headerLength), (header.Fin, header.Opcode, header.PayloadLength, header.Length));
        for (var cut = 0; cut < headerLength; cut++)                // every shorter prefix: wait, nothing wrong yet
            Assert.Equal(OperationStatus.NeedMoreData, WebSocketFrameHeader.TryRead(new ReadOnlySequence<byte>(frame, 0, cut), out _, out _));
    }

    [Fact]
    public void TryRead_HeaderSplitOverSegments_ReadsTheSameHeader()
    {
        var frame = WebSocketPeer.Frame(WebSocketOpcode.Text, new byte[300], fin: false);
        for (var at = 0; at <= 8; at++)
        {
            var split = Chunks(frame[..at], frame[at..]);
            Assert.Equal(OperationStatus.Done, WebSocketFrameHeader.TryRead(split, out var header, out _));
            Assert.Equal((false, 300L, 8), (header.Fin, header.PayloadLength, header.Length));
        }
    }

    public static TheoryData<string, byte[]> BadHeaders => new()
    {
        { "unmasked", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, masked: false) },
        { "RSV1", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0xC1) },
        { "RSV2", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0xA1) },
        { "RSV3", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0x91) },
        { "opcode 3", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0x83) },
        { "opcode 0xB", WebSocketPeer.Frame(WebSocketOpcode.Text, "hi"u8, first: 0x8B) },
        { "64-bit length, high bit", WebSocketPeer.Frame(WebSocketOpcode.Binary, [], length64: 0x8000_0000_0000_0000) },
        { "ping of 126 bytes", WebSocketPeer.Frame(WebSocketOpcode.Ping, new byte[126]) },
        { "fragmented ping", WebSocketPeer.Frame(WebSocketOpcode.Ping, "p"u8, fin: false) },
        { "fragmented close", WebSocketPeer.Frame(WebSocketOpcode.Close, [3, 232], fin: false) },
    };

    [Theory]
    [MemberData(nameof(BadHeaders))]
    public void TryRead_BadHeader_IsProtocolError(string name, byte[] frame)
    {
        Assert.Equal(OperationStatus.InvalidData, WebSocketFrameHeader.TryRead(new ReadOnlySequence<byte>(frame), out _, out var error));
        Assert.True(error == WebSocketCloseStatus.ProtocolError, name);
    }

    [Fact]
    public void TryRead_UnmaskedFrame_FailsOnItsFirstTwoBytes()
    {
        var frame = WebSocketPeer.Frame(WebSocketOpcode.Text, new byte[70000], masked: false);
        Assert.Equal(OperationStatus.InvalidData, WebSocketFrameHeader.TryRead(new ReadOnlySequence<byte>(frame, 0, 2), out _, out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Apply_AtAnyPhase_IsTheBytewiseXorAndItsOwnInverse(int phase)
    {
        var data = Enumerable.Range(0, 37).Select(i => (byte)(i * 7)).ToArray();
        var key = new byte[] { 0x12, 0x34, 0x56, 0x78 };
        var mask = BitConverter.ToUInt32(key);
        var masked = data.ToArray();
        Assert.Equal((phase + 37) & 3, WebSocketMask.Apply(masked, mask, phase));
        Assert.Equal(data.Select((b, i) => (byte)(b ^ key[(i + phase) % 4])).ToArray(), masked);
        // In two pieces, the second at the phase the first returned: the same as in one.
        var pieces = data.ToArray();
        var next = WebSocketMask.Apply(pieces.AsSpan(0, 13), mask, phase);
        WebSocketMask.Apply(pieces.AsSpan(13), mask, next);
        Assert.Equal(masked, pieces);
        WebSocketMask.Apply(masked, mask, phase);
        Assert.Equal(data, masked);
    }

    [Fact]
    public void Append_ValidTextSplitAtEveryOffset_IsValidAndComplete()
    {
        var text = Encoding.UTF8.GetBytes("a é € 𝄞 ü\u0000z");
        for (var at = 0; at <= text.Length; at++)
        {
            for (var at2 = at; at2 <= text.Length; at2++)
            {
                var utf8 = new Utf8Validator();
                Assert.True(utf8.Append(text.AsSpan(0, at)) && utf8.Append(text.AsSpan(at, at2 - at)) && utf8.Append(text.AsSpan(at2)), $"{at}/{at2}");
                Assert.True(utf8.IsComplete);
            }
        }
    }

    [Theory]
    [InlineData(new byte[] { 0xC3, 0x28 })]                      // a lead byte without its continuation
    [InlineData(new byte[] { 0x80 })]                            // a lone continuation byte
    [InlineData(new byte[] { 0xC0, 0xAF })]                      // overlong
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]                // a UTF-16 surrogate
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })]          // above U+10FFFF
    [InlineData(new byte[] { 0xFF })]
    public void Append_InvalidUtf8SplitAtEveryOffset_IsRefused(byte[] bad)
    {
        var text = (byte[])[.. "ok "u8, .. bad, .. " ok"u8];
        for (var at = 0; at <= text.Length; at++)
        {
            var utf8 = new Utf8Validator();
            Assert.False(utf8.Append(text.AsSpan(0, at)) && utf8.Append(text.AsSpan(at)), $"split at {at}");
        }
    }

    [Fact]
    public void Append_TextEndingInsideACodePoint_IsNotComplete()
    {
        var utf8 = new Utf8Validator();
        Assert.True(utf8.Append([0x61, 0xE2, 0x82]));
        Assert.False(utf8.IsComplete);
        Assert.True(utf8.Append([0xAC]));                            // € finished
        Assert.True(utf8.IsComplete);
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(125, 2)]
    [InlineData(126, 4)]
    [InlineData(65535, 4)]
    [InlineData(65536, 10)]
    public void WriteHeader_UsesTheShortestLengthEncoding(int length, int expected)
    {
        Span<byte> header = stackalloc byte[WebSocketFrameWriter.MaxHeaderLength];
        Assert.Equal(expected, WebSocketFrameWriter.WriteHeader(header, WebSocketOpcode.Text, length));
        Assert.Equal(0x81, header[0]);
        Assert.Equal(0, header[1] & 0x80);                            // never masked
    }

    [Fact]
    public void WriteClose_LongReason_IsCutAtACodePointToFitAControlFrame()
    {
        var output = new ArrayBufferWriter<byte>();
        WebSocketFrameWriter.WriteClose(output, WebSocketCloseStatus.PolicyViolation, new string('é', 100));
        var frame = output.WrittenSpan;
        Assert.True(frame[1] <= 125);
        Assert.Equal(1008, frame[2] << 8 | frame[3]);
        Assert.Equal(new string('é', 61), Encoding.UTF8.GetString(frame[4..]));
    }

    [Theory]
    [InlineData(1000, true)]
    [InlineData(1003, true)]
    [InlineData(1007, true)]
    [InlineData(1014, true)]
    [InlineData(3000, true)]
    [InlineData(4999, true)]
    [InlineData(0, false)]
    [InlineData(999, false)]
    [InlineData(1004, false)]
    [InlineData(1005, false)]
    [InlineData(1006, false)]
    [InlineData(1015, false)]
    [InlineData(1016, false)]
    [InlineData(2999, false)]
    [InlineData(5000, false)]
    public void IsSendable_FollowsRfc6455Section7_4(int code, bool sendable) => Assert.Equal(sendable, WebSocketCloseFrame.IsSendable(code));

    private static ReadOnlySequence<byte> Chunks(byte[] first, byte[] second)
    {
        var head = new Segment(first, 0);
        var tail = head.Append(second);
        return new ReadOnlySequence<byte>(head, 0, tail, second.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
