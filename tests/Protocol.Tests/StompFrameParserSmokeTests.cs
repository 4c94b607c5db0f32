using System.Buffers;
using System.Text;
using WsBroker.Protocol;

namespace WsBroker.Protocol.Tests;

public class StompFrameParserSmokeTests
{
    [Theory]
    [InlineData("SEND\ndestination:/topic/a\n\nhello\0")]
    [InlineData("\r\n\nSEND\r\ndestination:/topic/a\r\ncontent-length:5\r\n\r\nhe\0lo\0")]
    public void TryParse_InputSplitAtEveryOffset_ParsesTheSameFrame(string wire)
    {
        var bytes = Encoding.UTF8.GetBytes(wire);
        for (var at = 0; at <= bytes.Length; at++)
        {
            var buffer = Split(bytes, at);
            Assert.Equal(OperationStatus.Done, StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var frame, out _));
            Assert.Equal("/topic/a", frame!.Headers["destination"]);
            Assert.Equal(5, frame.Body.Length);
            Assert.True(buffer.IsEmpty);
        }
    }

    [Fact]
    public void Write_ThenParse_RoundTripsEscapedHeaders()
    {
        var frame = new StompFrame(StompCommand.Message, new StompHeaders().Add("a:b", "x\ny\\z\r:"), "hi"u8.ToArray());
        var output = new ArrayBufferWriter<byte>();
        StompFrameWriter.Write(output, frame);
        Assert.Equal("MESSAGE\na\\cb:x\\ny\\\\z\\r\\c\ncontent-length:2\n\nhi\0", Encoding.UTF8.GetString(output.WrittenSpan));
        var buffer = new ReadOnlySequence<byte>(output.WrittenMemory);
        Assert.Equal(OperationStatus.Done, StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var parsed, out _));
        Assert.Equal("x\ny\\z\r:", parsed!.Headers["a:b"]);
    }

    private static ReadOnlySequence<byte> Split(byte[] bytes, int at)
    {
        if (at == 0 || at == bytes.Length) return new ReadOnlySequence<byte>(bytes);
        var first = new Segment(bytes.AsMemory(0, at), 0);
        var last = first.Append(bytes.AsMemory(at));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
