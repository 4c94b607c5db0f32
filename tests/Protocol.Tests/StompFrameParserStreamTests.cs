using System.Buffers;
using System.Text;

namespace WsBroker.Protocol.Tests;

/// <summary><see cref="StompFrameParser.TryParseNext"/> fed the way a pipe reader feeds it: the unfinished frame again, with
/// what arrived since appended, in pieces of every size.</summary>
public class StompFrameParserStreamTests
{
    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Feeds <paramref name="bytes"/> in pieces of <paramref name="piece"/> bytes, as a read loop over a pipe
    /// does (consumed = start of the unfinished frame, examined = everything), and collects the frames.</summary>
    private static (List<StompFrame> Frames, OperationStatus Last, StompParseError Error) Stream(StompFrameParser parser, byte[] bytes, int piece,
        bool releaseScratch = false)
    {
        var frames = new List<StompFrame>();
        var start = 0;
        for (var end = Math.Min(piece, bytes.Length); ; end = Math.Min(end + piece, bytes.Length))
        {
            // Small inputs in 3-byte segments; large ones as one segment over the same array (copying the unfinished frame
            // on every byte would make the test, not the parser, quadratic).
            var buffer = bytes.Length <= 1024 ? TestSequence.Chunked(bytes[start..end], 3) : new ReadOnlySequence<byte>(bytes, start, end - start);
            OperationStatus status;
            StompParseError error;
            while ((status = parser.TryParseNext(ref buffer, out error)) == OperationStatus.Done)
            {
                frames.Add(parser.Frame.ToFrame());
                Assert.False(parser.HasPartialFrame);
            }
            if (status == OperationStatus.InvalidData) return (frames, status, error);
            Assert.Equal(buffer.Length, parser.PartialFrameBytes);
            if (releaseScratch) parser.ReleaseScratch();               // as a session does after each read
            start = end - (int)buffer.Length;
            if (end == bytes.Length) return (frames, status, error);
        }
    }

    public static TheoryData<int> Pieces => [1, 2, 3, 7, 64, 4096];

    [Theory]
    [MemberData(nameof(Pieces))]
    public void TryParseNext_FramesInPiecesOfAnySize_ParsesTheSameFramesAsWhole(int piece)
    {
        var bytes = Utf8("\n\r\nSEND\ndestination:/a\nreceipt:r\\c1\n\none\0\n\nSEND\r\ndestination:/b\r\ncontent-length:5\r\n\r\n\0t\0w\0\0"
            + "\r\n\nMESSAGE\nx:y\n\nthree\0\nCONNECT\naccept-version:1.0\n\n\n\0\n");
        var (frames, last, _) = Stream(new StompFrameParser(), bytes, piece);
        Assert.Equal(OperationStatus.NeedMoreData, last);
        Assert.Equal([StompCommand.Send, StompCommand.Send, StompCommand.Message, StompCommand.Connect], frames.Select(f => f.Command));
        Assert.Equal(["one", "\0t\0w\0", "three", ""], frames.Select(f => f.BodyText));
        Assert.Equal("r:1", frames[0].Headers["receipt"]);
        Assert.Equal("/b", frames[1].Headers["destination"]);
    }

    [Theory]
    [MemberData(nameof(Pieces))]
    public void TryParseNext_ScratchReleasedAfterEveryRead_KeepsTheUnfinishedFramesHeadersAndParsesTheSame(int piece)
    {
        var bytes = Utf8("SEND\ndestination:/a\nreceipt:r\\c1\n\none\0" + "SEND\r\n" + string.Concat(Enumerable.Range(0, 20).Select(i => $"h{i}:{new string('v', 20)}\r\n"))
            + "destination:/b\r\ncontent-length:3\r\n\n\0w\0\0MESSAGE\nx:y\n\nthree\0");
        var (frames, last, _) = Stream(new StompFrameParser(), bytes, piece, releaseScratch: true);
        Assert.Equal(OperationStatus.NeedMoreData, last);
        Assert.Equal([StompCommand.Send, StompCommand.Send, StompCommand.Message], frames.Select(f => f.Command));
        Assert.Equal("r:1", frames[0].Headers["receipt"]);
        Assert.Equal("/b", frames[1].Headers["destination"]);
        Assert.Equal(new string('v', 20), frames[1].Headers["h19"]);
        Assert.Equal("y", frames[2].Headers["x"]);
    }

    [Theory]
    [InlineData("SEND\ndestination:/a\n\nbody\0")]
    [InlineData("\n\nSEND\ncontent-length:3\n\na\0b\0\r\nSEND\n\n\0")]
    [InlineData("SEND\ndestination:/a\nreceipt:r-1\ncontent-length:65537\n\n")]
    [InlineData("SEND\nk:v\\t\n\n\0")]
    [InlineData("\r\r\n")]
    public void TryParseNext_EveryPrefix_AnswersAsTryParseDoesOnTheSameBytes(string wire)
    {
        var bytes = Utf8(wire);
        var streamed = new StompFrameParser();
        var start = 0;
        for (var end = 0; end <= bytes.Length; end++)
        {
            var expected = TestSequence.Whole(bytes[start..end]);
            var expectedStatus = new StompFrameParser().TryParse(ref expected, out var expectedError);
            var buffer = TestSequence.PerByte(bytes[start..end]);
            Assert.Equal(expectedStatus, streamed.TryParseNext(ref buffer, out var error));
            Assert.Equal(expectedError, error);
            Assert.Equal(expected.Length, buffer.Length);
            if (expectedStatus == OperationStatus.InvalidData) break;
            start = end - (int)buffer.Length;
            if (expectedStatus == OperationStatus.Done) end--;             // parse what is left before the next byte
        }
    }

    [Fact]
    public void TryParseNext_ContentLengthOverTheBodyLimit_RefusedWhenTheHeaderBlockEndsExactlyAtTheBufferEnd()
    {
        var head = Utf8("SEND\ndestination:/a\nreceipt:r-9\ncontent-length:65537\n\n");
        var parser = new StompFrameParser();
        for (var end = 1; end < head.Length; end++)
        {
            var partial = TestSequence.PerByte(head[..end]);
            Assert.Equal(OperationStatus.NeedMoreData, parser.TryParseNext(ref partial, out _));
            Assert.Equal(end, parser.PartialFrameBytes);
        }
        var buffer = TestSequence.PerByte(head);
        Assert.Equal(OperationStatus.InvalidData, parser.TryParseNext(ref buffer, out var error));
        Assert.Equal(StompParseError.BodyTooLarge, error);
        Assert.Equal("r-9", parser.ReceiptOfInvalidFrame);
        Assert.False(parser.HasPartialFrame);
    }

    [Fact]
    public void TryParseNext_HeartBeatsOnly_HoldNoPartialFrame()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("\n\r\n\n"));
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParseNext(ref buffer, out _));
        Assert.True(buffer.IsEmpty);
        Assert.False(parser.HasPartialFrame);
        Assert.Equal(0, parser.PartialFrameBytes);
    }

    [Fact]
    public void TryParseNext_HalfACrLfHeartBeatThenItsLf_IsAHeartBeatNotACommand()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("\r"));
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParseNext(ref buffer, out _));
        Assert.True(parser.HasPartialFrame);                          // a lone CR may still be the start of anything
        buffer = TestSequence.Whole(Utf8("\r\n"));
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParseNext(ref buffer, out var error));
        Assert.Equal(StompParseError.None, error);
        Assert.True(buffer.IsEmpty);
        Assert.False(parser.HasPartialFrame);
    }

    [Fact]
    public void TryParseNext_FrameDoneThenTheStartOfTheNext_HoldsThePartialNextFrame()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("SEND\ndestination:/a\n\nx\0\nSEN"));
        Assert.Equal(OperationStatus.Done, parser.TryParseNext(ref buffer, out _));
        Assert.False(parser.HasPartialFrame);
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParseNext(ref buffer, out _));
        Assert.Equal(3, parser.PartialFrameBytes);
        Assert.Equal(StompCommand.None, parser.Frame.Command);
    }

    [Fact]
    public void TryParseNext_ShorterBufferThanTheUnfinishedFrame_StartsOver()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("SEND\ndestination:/a\nk:v\n"));
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParseNext(ref buffer, out _));
        buffer = TestSequence.Whole(Utf8("ACK\nid:b\n\n\0"));          // shorter, so not a continuation: parsed afresh
        Assert.Equal(OperationStatus.Done, parser.TryParseNext(ref buffer, out _));
        Assert.Equal(StompCommand.Ack, parser.Frame.Command);
        Assert.Equal("b", parser.Frame.GetHeaderString("id"u8));
    }

    [Fact]
    public void TryParse_AfterTryParseNextLeftAPartialFrame_ForgetsIt()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("SEND\ndestination:/a\n"));
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParseNext(ref buffer, out _));
        buffer = TestSequence.Whole(Utf8("ACK\nid:7\n\n\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        Assert.False(parser.HasPartialFrame);
        Assert.Equal(StompCommand.Ack, parser.Frame.Command);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TryParseNext_FrameTrickledOneByteAtATime_ParsesAFewTimesNotOncePerByte(bool contentLength)
    {
        const int bodyLength = 60_000;
        var head = "SEND\ndestination:/a\nreceipt:r-1\n" + (contentLength ? $"content-length:{bodyLength}\n" : "") + "\n";
        var bytes = Utf8(head + new string('b', bodyLength) + "\0");
        var parser = new StompFrameParser();
        var (frames, _, _) = Stream(parser, bytes, 1);
        Assert.Equal(bodyLength, Assert.Single(frames).Body.Length);
        // One parse when the first byte arrives, one per completed line (4 or 5), one for the body: not 60,000.
        Assert.InRange(parser.ParseRuns, 1, 8);
    }

    [Fact]
    public void TryParseNext_HeaderLineTrickledPastTheLineLimit_IsRefusedWithoutItsEol()
    {
        var limits = StompLimits.Default with { MaxHeaderLineBytes = 32 };
        var bytes = Utf8("SEND\nk:" + new string('v', 64));
        var (_, last, error) = Stream(new StompFrameParser(limits), bytes, 1);
        Assert.Equal(OperationStatus.InvalidData, last);
        Assert.Equal(StompParseError.HeaderLineTooLong, error);
    }

    [Fact]
    public void TryParseNext_BodyWithoutNulTrickledPastTheBodyLimit_IsRefused()
    {
        var limits = StompLimits.Default with { MaxBodyBytes = 100 };
        var bytes = Utf8("SEND\ndestination:/a\n\n" + new string('b', 200));
        var (_, last, error) = Stream(new StompFrameParser(limits), bytes, 1);
        Assert.Equal(OperationStatus.InvalidData, last);
        Assert.Equal(StompParseError.BodyTooLarge, error);
    }
}
