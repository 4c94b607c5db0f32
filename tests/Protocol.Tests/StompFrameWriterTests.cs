using System.Buffers;
using System.Text;

namespace WsBroker.Protocol.Tests;

public class StompFrameWriterTests
{
    private static string Written(Action<ArrayBufferWriter<byte>> write)
    {
        var output = new ArrayBufferWriter<byte>();
        write(output);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    [Fact]
    public void Write_Send_AddsContentLengthAndNul()
    {
        var frame = new StompFrame(StompCommand.Send, new StompHeaders().Add("destination", "/queue/a").Add("content-type", "text/plain"),
            "hello queue a"u8.ToArray());
        Assert.Equal("SEND\ndestination:/queue/a\ncontent-type:text/plain\ncontent-length:13\n\nhello queue a\0", Written(o => StompFrameWriter.Write(o, frame)));
    }

    [Fact]
    public void Write_ContentLengthInHeaders_IsReplacedByTheRealLength()
    {
        var frame = new StompFrame(StompCommand.Message, new StompHeaders().Add("content-length", "99").Add("a", "b"), "\0\0"u8.ToArray());
        Assert.Equal("MESSAGE\na:b\ncontent-length:2\n\n\0\0\0", Written(o => StompFrameWriter.Write(o, frame)));
    }

    [Theory]
    [InlineData(StompCommand.Receipt, "RECEIPT\nreceipt-id:77\n\n\0")]
    [InlineData(StompCommand.Subscribe, "SUBSCRIBE\nreceipt-id:77\n\n\0")]
    public void Write_CommandWithoutBody_HasNoContentLength(StompCommand command, string expected)
    {
        var frame = new StompFrame(command, new StompHeaders().Add("receipt-id", "77"));
        Assert.Equal(expected, Written(o => StompFrameWriter.Write(o, frame)));
    }

    [Fact]
    public void Write_BodyOnCommandThatMustNotHaveOne_Throws()
    {
        var frame = new StompFrame(StompCommand.Receipt, body: "x"u8.ToArray());
        Assert.Throws<ArgumentException>(() => StompFrameWriter.Write(new ArrayBufferWriter<byte>(), frame));
    }

    [Fact]
    public void StompFrame_WithoutCommand_Throws() => Assert.Throws<ArgumentOutOfRangeException>(() => new StompFrame(StompCommand.None));

    [Theory]
    [InlineData(StompVersion.V1_2, "MESSAGE\na\\cb:x\\ny\\\\z\\r\\c\ncontent-length:0\n\n\0")]
    [InlineData(StompVersion.V1_1, "MESSAGE\na\\cb:x\\ny\\\\z\r\\c\ncontent-length:0\n\n\0")]
    [InlineData(StompVersion.V1_0, "MESSAGE\na:b:x y\\z :\ncontent-length:0\n\n\0")]
    public void Write_Escaping_PerVersionExactBytes(StompVersion version, string expected)
    {
        var frame = new StompFrame(StompCommand.Message, new StompHeaders().Add("a:b", "x\ny\\z\r:"));
        Assert.Equal(expected, Written(o => StompFrameWriter.Write(o, frame, version)));
    }

    [Theory]
    [InlineData(StompCommand.Connect)]
    [InlineData(StompCommand.Connected)]
    public void Write_ConnectAndConnected_AreNotEscaped(StompCommand command)
    {
        var frame = new StompFrame(command, new StompHeaders().Add("passcode", "a:b\\c"));
        Assert.Equal($"{command.ToWireString()}\npasscode:a:b\\c\n\n\0", Written(o => StompFrameWriter.Write(o, frame)));
    }

    [Theory]
    [InlineData(StompCommand.Connected, StompVersion.V1_2)]
    [InlineData(StompCommand.Message, StompVersion.V1_0)]
    public void Write_LineBreakWithoutEscaping_CannotInjectHeaders(StompCommand command, StompVersion version)
    {
        var frame = new StompFrame(command, new StompHeaders().Add("user-name", "eve\nmessage-id:forged\r\n\r\n"));
        var text = Written(o => StompFrameWriter.Write(o, frame, version));
        Assert.StartsWith($"{command.ToWireString()}\nuser-name:eve message-id:forged    \n", text);

        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(text));
        Assert.Equal(OperationStatus.Done, StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var parsed, out _, version));
        Assert.False(parsed!.Headers.Contains("message-id"));
    }

    [Fact]
    public void WriteHeader_Utf8BytesAndChars_ProduceTheSameEscapedBytes()
    {
        const string name = "ключ:\\";
        const string value = "значение\n😀\r:";
        foreach (var escape in Enum.GetValues<StompEscaping>())
        {
            var fromChars = Written(o => StompFrameWriter.WriteHeader(o, name, value, escape));
            var fromBytes = Written(o => StompFrameWriter.WriteHeader(o, Encoding.UTF8.GetBytes(name), Encoding.UTF8.GetBytes(value), escape));
            Assert.Equal(fromChars, fromBytes);
        }
        Assert.Equal("ключ\\c\\\\:значение\\n😀\\r\\c\n", Written(o => StompFrameWriter.WriteHeader(o, name, value)));
    }

    [Theory]
    [InlineData(0L, "k:0\n")]
    [InlineData(65536L, "k:65536\n")]
    [InlineData(-5L, "k:-5\n")]
    [InlineData(long.MaxValue, "k:9223372036854775807\n")]
    public void WriteHeader_Number_IsDecimal(long value, string expected) =>
        Assert.Equal(expected, Written(o => StompFrameWriter.WriteHeader(o, "k"u8, value)));

    [Fact]
    public void WriteBodyAndEnd_MultiSegmentBody_EqualsSingleSegment()
    {
        var body = Enumerable.Range(0, 10_000).Select(i => (byte)i).ToArray();
        var single = Written(o => StompFrameWriter.WriteBodyAndEnd(o, body));
        var multi = Written(o => StompFrameWriter.WriteBodyAndEnd(o, TestSequence.Chunked(body, 999)));
        Assert.Equal(single, multi);
        Assert.StartsWith("content-length:10000\n\n", single);
        Assert.Equal('\0', single[^1]);
        Assert.Equal("\n\0", Written(o => StompFrameWriter.WriteBodyAndEnd(o, ReadOnlySpan<byte>.Empty, writeContentLength: false)));
        Assert.Equal("\nab\0", Written(o => StompFrameWriter.WriteBodyAndEnd(o, TestSequence.PerByte("ab"u8.ToArray()), writeContentLength: false)));
    }

    [Fact]
    public void WriteHeartBeatAndRaw_WriteExactBytes()
    {
        Assert.Equal("\n", Written(StompFrameWriter.WriteHeartBeat));
        Assert.Equal("abc", Written(o => StompFrameWriter.WriteRaw(o, "abc"u8)));
    }

    [Fact]
    public void WriteCommand_None_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => StompFrameWriter.WriteCommand(new ArrayBufferWriter<byte>(), StompCommand.None));

    [Theory]
    [InlineData(StompCommand.Connect, StompVersion.V1_2, StompEscaping.None)]
    [InlineData(StompCommand.Connected, StompVersion.V1_1, StompEscaping.None)]
    [InlineData(StompCommand.Send, StompVersion.V1_0, StompEscaping.None)]
    [InlineData(StompCommand.Message, StompVersion.V1_1, StompEscaping.V1_1)]
    [InlineData(StompCommand.Error, StompVersion.V1_2, StompEscaping.V1_2)]
    public void EscapeMode_FollowsCommandAndVersion(StompCommand command, StompVersion version, StompEscaping expected) =>
        Assert.Equal(expected, StompFrameWriter.EscapeMode(command, version));

    [Fact]
    public void Write_IntoReusedBuffer_AllocatesNothing()
    {
        var output = new ArrayBufferWriter<byte>(1024);
        var body = new byte[100];
        void WriteOnce()
        {
            output.ResetWrittenCount();
            StompFrameWriter.WriteCommand(output, StompCommand.Message);
            StompFrameWriter.WriteHeader(output, "destination"u8, "/topic/a:b"u8);
            StompFrameWriter.WriteHeader(output, "subscription", "sub-0");
            StompFrameWriter.WriteHeader(output, "message-id"u8, 123456789);
            StompFrameWriter.WriteBodyAndEnd(output, body);
        }
        for (var i = 0; i < 100; i++) WriteOnce();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++) WriteOnce();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.StartsWith("MESSAGE\ndestination:/topic/a\\cb\nsubscription:sub-0\nmessage-id:123456789\ncontent-length:100\n\n",
            Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Theory]
    [InlineData(StompVersion.V1_2, "RECEIPT\nreceipt-id:a\\cb\\nc\\rd\\\\e\n\n\0")]
    [InlineData(StompVersion.V1_1, "RECEIPT\nreceipt-id:a\\cb\\nc\rd\\\\e\n\n\0")]
    [InlineData(StompVersion.V1_0, "RECEIPT\nreceipt-id:a:b c d\\e\n\n\0")]
    public void WriteReceipt_RawReceiptId_IsEscapedForTheVersion(StompVersion version, string expected) =>
        Assert.Equal(expected, Written(o => StompFrameWriter.WriteReceipt(o, "a:b\nc\rd\\e"u8, version)));

    [Theory]
    [InlineData(StompVersion.V1_2, "SEND\ndestination:/a\nreceipt:r\\c1\\\\x\\n\n\n\0")]
    [InlineData(StompVersion.V1_1, "SEND\ndestination:/a\nreceipt:r\\c1\\\\x\\n\n\n\0")]
    [InlineData(StompVersion.V1_0, "SEND\ndestination:/a\nreceipt:r:1\\x\n\n\0")]
    [InlineData(StompVersion.V1_2, "CONNECT\naccept-version:1.2\nreceipt:r\\c1\n\n\0")]   // CONNECT is never unescaped
    public void WriteReceipt_ReceiptAsTheParserReturnsIt_ReadsBackAsTheClientSentIt(StompVersion version, string wire)
    {
        var parser = new StompFrameParser(version: version);
        var buffer = TestSequence.Whole(Encoding.UTF8.GetBytes(wire));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        Assert.True(parser.Frame.TryGetHeader("receipt"u8, out var receipt));
        var output = new ArrayBufferWriter<byte>();
        StompFrameWriter.WriteReceipt(output, receipt, version);

        var reader = new StompFrameParser(version: version);
        var written = new ReadOnlySequence<byte>(output.WrittenMemory);
        Assert.Equal(OperationStatus.Done, reader.TryParse(ref written, out _));
        Assert.Equal(StompCommand.Receipt, reader.Frame.Command);
        Assert.True(reader.Frame.TryGetHeader("receipt-id"u8, out var receiptId));
        Assert.Equal(receipt.ToArray(), receiptId.ToArray());
    }

    [Fact]
    public void WriteError_AllParts_ExactBytes()
    {
        Assert.Equal("ERROR\nmessage:bad\\cframe\nreceipt-id:r\\c1\nversion:1.0,1.1,1.2\ncontent-type:text/plain\ncontent-length:9\n\nbad:frame\0",
            Written(o => StompFrameWriter.WriteError(o, "bad:frame", "r:1"u8, StompVersion.V1_2, listSupportedVersions: true)));
        Assert.Equal("ERROR\nmessage:bad frame\ncontent-type:text/plain\ncontent-length:7\n\ndétail\0",
            Written(o => StompFrameWriter.WriteError(o, "bad frame", default, StompVersion.V1_0, "détail")));
    }

    [Fact]
    public void WriteTextBodyAndEnd_NonAsciiText_CountsUtf8Octets()
    {
        Assert.Equal("content-length:7\n\nhé ✓\0", Written(o => StompFrameWriter.WriteTextBodyAndEnd(o, "hé ✓")));
        Assert.Equal("\nx\0", Written(o => StompFrameWriter.WriteTextBodyAndEnd(o, "x", writeContentLength: false)));
    }

    [Fact]
    public void Replies_ReceiptErrorAndUserErrorMessage_AllocateNothing()
    {
        var output = new ArrayBufferWriter<byte>(4096);
        for (var round = 0; round < 2; round++)                          // the first round warms up the JIT
        {
            output.ResetWrittenCount();
            var before = GC.GetAllocatedBytesForCurrentThread();
            StompFrameWriter.WriteReceipt(output, "r-1234"u8, StompVersion.V1_2);
            StompFrameWriter.WriteError(output, "unknown destination", "r-1234"u8, StompVersion.V1_2, "no such topic: /x", listSupportedVersions: true);
            StompFrameWriter.WriteCommand(output, StompCommand.Message);
            StompFrameWriter.WriteHeader(output, "subscription"u8, "sub-0"u8);
            StompFrameWriter.WriteHeader(output, "message-id"u8, 1234567890123L);
            StompFrameWriter.WriteHeader(output, "destination"u8, "/user/queue/errors"u8);
            StompFrameWriter.WriteHeader(output, "content-type"u8, "text/plain"u8);
            StompFrameWriter.WriteHeader(output, "message", "could-not-send-message: denied");
            StompFrameWriter.WriteHeader(output, "receipt-id"u8, "r-1234"u8);
            StompFrameWriter.WriteTextBodyAndEnd(output, "could-not-send-message: denied");
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (round == 1) Assert.Equal(0, allocated);
        }
    }
}
