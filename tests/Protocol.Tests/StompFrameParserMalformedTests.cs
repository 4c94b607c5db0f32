using System.Buffers;
using System.Text;

namespace WsBroker.Protocol.Tests;

/// <summary>Malformed input, each mapped to its specific <see cref="StompParseError"/>, whatever the segmentation.</summary>
public class StompFrameParserMalformedTests
{
    private static readonly StompLimits s_small = new() { MaxFrameBytes = 256, MaxHeaderCount = 3, MaxHeaderLineBytes = 32, MaxBodyBytes = 64 };

    private static readonly Dictionary<string, Case> s_cases = new()
    {
        ["unknown command"] = new(StompParseError.UnknownCommand, Utf8("FOO\n\n\0")),
        ["lower-case command"] = new(StompParseError.UnknownCommand, Utf8("send\ndestination:/a\n\n\0")),
        ["command with trailing space"] = new(StompParseError.UnknownCommand, Utf8("SEND \ndestination:/a\n\n\0")),
        ["command with leading space"] = new(StompParseError.UnknownCommand, Utf8(" SEND\n\n\0")),
        ["CRLF command in 1.1"] = new(StompParseError.UnknownCommand, Utf8("SEND\r\n\r\n\0"), StompVersion.V1_1),
        ["lone CR before command"] = new(StompParseError.UnknownCommand, Utf8("\rSEND\n\n\0")),
        ["NUL instead of command"] = new(StompParseError.UnknownCommand, Utf8("\0\n")),
        ["header without colon"] = new(StompParseError.MalformedHeader, Utf8("SEND\ndestination\n\n\0")),
        ["header with empty name"] = new(StompParseError.MalformedHeader, Utf8("SEND\n:value\n\n\0")),
        ["raw CR inside a 1.2 header value"] = new(StompParseError.MalformedHeader, Utf8("SEND\ndestination:/a\rb\n\n\0")),
        ["raw CR before a CRLF line end"] = new(StompParseError.MalformedHeader, Utf8("SEND\r\ndestination:/a\r\r\n\r\n\0")),
        ["NUL where the blank line should be"] = new(StompParseError.MalformedHeader, Utf8("DISCONNECT\nreceipt:77\n\0\n")),
        ["undefined escape \\t"] = new(StompParseError.InvalidEscape, Utf8("SEND\ndestination:/a\\tb\n\n\0")),
        ["trailing backslash"] = new(StompParseError.InvalidEscape, Utf8("SEND\ndestination:/a\\\n\n\0")),
        ["escape in name"] = new(StompParseError.InvalidEscape, Utf8("SEND\na\\x:b\n\n\0")),
        ["\\r escape in 1.1"] = new(StompParseError.InvalidEscape, Utf8("MESSAGE\nk:a\\rb\n\n\0"), StompVersion.V1_1),
        ["command line too long"] = new(StompParseError.HeaderLineTooLong, Utf8(new string('S', 40) + "\n\n\0"), Limits: s_small),
        ["command line too long without EOL"] = new(StompParseError.HeaderLineTooLong, Utf8(new string('S', 40)), Limits: s_small),
        ["header line too long"] = new(StompParseError.HeaderLineTooLong, Utf8("SEND\nk:" + new string('v', 31) + "\n\n\0"), Limits: s_small),
        ["header line too long without EOL"] = new(StompParseError.HeaderLineTooLong, Utf8("SEND\nk:" + new string('v', 40)), Limits: s_small),
        ["header line too long before CRLF"] = new(StompParseError.HeaderLineTooLong, Utf8("SEND\nk:" + new string('v', 31) + "\r\n\r\n\0"), Limits: s_small),
        ["too many headers"] = new(StompParseError.TooManyHeaders, Utf8("SEND\na:1\nb:2\nc:3\nd:4\n\n\0"), Limits: s_small),
        ["content-length not a number"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length:abc\n\n\0")),
        ["content-length negative"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length:-1\n\n\0")),
        ["content-length with plus"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length:+1\n\nx\0")),
        ["content-length empty"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length:\n\n\0")),
        ["content-length with space"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length: 1\n\nx\0")),
        ["content-length fraction"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length:1.0\n\nx\0")),
        ["content-length hex"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length:0x1\n\nx\0")),
        ["content-length overflow"] = new(StompParseError.InvalidContentLength, Utf8("SEND\ncontent-length:99999999999999999999999\n\n\0")),
        ["content-length over body limit"] = new(StompParseError.BodyTooLarge, Utf8("SEND\ncontent-length:65\n\n"), Limits: s_small),
        ["content-length huge"] = new(StompParseError.BodyTooLarge, Utf8("SEND\ncontent-length:9223372036854775807\n\n")),
        ["body without content-length over body limit"] = new(StompParseError.BodyTooLarge, Utf8("SEND\n\n" + new string('b', 65)), Limits: s_small),
        ["body within body limit but over frame limit"] = new(StompParseError.FrameTooLarge, Utf8("SEND\n\n" + new string('b', 60)),
            Limits: s_small with { MaxFrameBytes = 64 }),
        ["content-length within body limit but over frame limit"] = new(StompParseError.FrameTooLarge,
            Utf8("SEND\ncontent-length:60\n\n" + new string('b', 60) + "\0"), Limits: s_small with { MaxFrameBytes = 64 }),
        ["header block over frame limit"] = new(StompParseError.FrameTooLarge,
            Utf8("SUBSCRIBE\nid:" + new string('1', 28) + "\ndestination:/" + new string('d', 18) + "\nack:auto\n\n\0"),
            Limits: s_small with { MaxFrameBytes = 64 }),
        ["content-length body not followed by NUL"] = new(StompParseError.MissingNul, Utf8("SEND\ncontent-length:2\n\nabc\0")),
        ["content-length zero but body"] = new(StompParseError.MissingNul, Utf8("SEND\ncontent-length:0\n\nx\0")),
        ["body on SUBSCRIBE"] = new(StompParseError.BodyNotAllowed, Utf8("SUBSCRIBE\nid:1\ndestination:/a\n\nbody\0")),
        ["body on CONNECT"] = new(StompParseError.BodyNotAllowed, Utf8("CONNECT\naccept-version:1.2\n\nx\0")),
        ["body with content-length on RECEIPT"] = new(StompParseError.BodyNotAllowed, Utf8("RECEIPT\nreceipt-id:1\ncontent-length:3\n\n\0\0\0\0")),
        ["invalid UTF-8 in value"] = new(StompParseError.InvalidUtf8, [.. Utf8("SEND\ndestination:/"), 0xFF, .. Utf8("\n\n\0")]),
        ["truncated UTF-8 in name"] = new(StompParseError.InvalidUtf8, [.. Utf8("SEND\n"), 0xE6, 0x97, .. Utf8(":x\n\n\0")]),
        ["overlong UTF-8"] = new(StompParseError.InvalidUtf8, [.. Utf8("SEND\nk:"), 0xC0, 0xAF, .. Utf8("\n\n\0")]),
    };

    public static TheoryData<string> Names => [.. s_cases.Keys];

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    [Theory]
    [MemberData(nameof(Names))]
    public void TryParse_MalformedWholeSplitOrPerByte_ReportsItsError(string name)
    {
        var c = s_cases[name];
        var shapes = new List<ReadOnlySequence<byte>> { TestSequence.Whole(c.Bytes), TestSequence.PerByte(c.Bytes) };
        for (var at = 0; at <= c.Bytes.Length; at++) shapes.Add(TestSequence.Split(c.Bytes, at));
        foreach (var shape in shapes)
        {
            var parser = new StompFrameParser(c.Limits, c.Version);
            var buffer = shape;
            Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out var error));
            Assert.Equal(c.Error, error);
            Assert.Equal(StompCommand.None, parser.Frame.Command);
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void TryParse_MalformedFedByteByByte_NeedsMoreDataThenReportsItsError(string name)
    {
        var c = s_cases[name];
        var parser = new StompFrameParser(c.Limits, c.Version);
        for (var length = 0; length <= c.Bytes.Length; length++)
        {
            var buffer = TestSequence.Whole(c.Bytes[..length]);
            var status = parser.TryParse(ref buffer, out var error);
            Assert.NotEqual(OperationStatus.Done, status);
            if (status == OperationStatus.InvalidData)
            {
                Assert.Equal(c.Error, error);
                return;
            }
        }
        Assert.Fail("never reported an error");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void TryParseNext_MalformedFedByteByByte_ReportsItsErrorAtTheSameByteAsTryParse(string name)
    {
        var c = s_cases[name];
        var streamed = new StompFrameParser(c.Limits, c.Version);
        var start = 0;
        for (var end = 0; end <= c.Bytes.Length; end++)
        {
            var expected = TestSequence.Whole(c.Bytes[start..end]);
            var expectedStatus = new StompFrameParser(c.Limits, c.Version).TryParse(ref expected, out var expectedError);
            var buffer = TestSequence.PerByte(c.Bytes[start..end]);
            var status = streamed.TryParseNext(ref buffer, out var error);
            Assert.Equal(expectedStatus, status);
            Assert.Equal(expectedError, error);
            if (status == OperationStatus.InvalidData)
            {
                Assert.Equal(c.Error, error);
                Assert.False(streamed.HasPartialFrame);
                return;
            }
            Assert.Equal(OperationStatus.NeedMoreData, status);
            start = end - (int)buffer.Length;
        }
        Assert.Fail("never reported an error");
    }

    [Theory]
    [InlineData("SEND\nreceipt:r-1\ncontent-length:65537\n\n", StompParseError.BodyTooLarge)]
    [InlineData("SEND\nreceipt:r-1\ncontent-length:9223372036854775807\n\n", StompParseError.BodyTooLarge)]
    [InlineData("SEND\r\nreceipt:r-1\r\ncontent-length:70000\r\n\r\n", StompParseError.BodyTooLarge)]
    [InlineData("SEND\ncontent-length:65537\nreceipt:r-1\n\nfirst body bytes", StompParseError.BodyTooLarge)]
    [InlineData("SEND\nreceipt:r-1\ncontent-length:65535\n\n", StompParseError.FrameTooLarge)]   // fits the body limit, not the frame
    [InlineData("SEND\nreceipt:r-1\ncontent-length:abc\n\n", StompParseError.InvalidContentLength)]
    [InlineData("SEND\nreceipt:r-1\ncontent-length:-5\n\n", StompParseError.InvalidContentLength)]
    [InlineData("SEND\nreceipt:r-1\ncontent-length:-0\n\n", StompParseError.InvalidContentLength)]
    [InlineData("SEND\nreceipt:r-1\ncontent-length:99999999999999999999\n\n", StompParseError.InvalidContentLength)]
    [InlineData("SEND\nreceipt:r-1\ncontent-length:1e3\n\n", StompParseError.InvalidContentLength)]
    public void TryParse_BadContentLengthWithNoBodyYet_RefusedAtTheHeaderBlockWithItsReceipt(string wire, StompParseError expected)
    {
        var bytes = Utf8(wire);
        var shapes = new List<ReadOnlySequence<byte>> { TestSequence.Whole(bytes), TestSequence.PerByte(bytes) };
        for (var at = 0; at <= bytes.Length; at++) shapes.Add(TestSequence.Split(bytes, at));
        foreach (var shape in shapes)
        {
            var parser = new StompFrameParser();
            var buffer = shape;
            Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out var error));
            Assert.Equal(expected, error);
            Assert.Equal("r-1", parser.ReceiptOfInvalidFrame);
            Assert.True(parser.TryGetReceiptOfInvalidFrame(out var receipt));
            Assert.Equal("r-1"u8.ToArray(), receipt.ToArray());
        }
    }

    [Fact]
    public void TryGetReceiptOfInvalidFrame_HeaderErrorBeforeTheReceipt_IsFalse()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("SEND\ncontent-length:x\nreceipt:r-1\n\n\0"));
        Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out _));
        Assert.Equal("r-1", parser.ReceiptOfInvalidFrame);          // the whole header block was read: its receipt counts
        buffer = TestSequence.Whole(Utf8("SEND\nbad\nreceipt:r-1\n\n\0"));
        Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out _));
        Assert.False(parser.TryGetReceiptOfInvalidFrame(out _));
        Assert.Null(parser.ReceiptOfInvalidFrame);
    }

    [Fact]
    public void Table_CoversEveryParseError()
    {
        var covered = s_cases.Values.Select(c => c.Error).ToHashSet();
        var missing = Enum.GetValues<StompParseError>().Where(e => e != StompParseError.None && !covered.Contains(e)).ToList();
        Assert.True(missing.Count == 0, "not covered: " + string.Join(", ", missing));
    }

    [Fact]
    public void ToMessage_EveryError_HasItsOwnText()
    {
        var messages = Enum.GetValues<StompParseError>().Select(e => e.ToMessage()).ToList();
        Assert.Equal(messages.Count, messages.Distinct().Count());
        Assert.DoesNotContain("malformed frame", messages);
    }

    [Fact]
    public void StaticTryParse_Malformed_ReturnsNoFrame()
    {
        var buffer = TestSequence.Whole(Utf8("FOO\n\n\0"));
        Assert.Equal(OperationStatus.InvalidData, StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var frame, out var error));
        Assert.Null(frame);
        Assert.Equal(StompParseError.UnknownCommand, error);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(1 << 20)]
    public void TryParse_OneMebibyteHeaderWithoutEol_IsAnErrorNotNeedMoreData(int segmentSize)
    {
        var bytes = Utf8("SEND\ndestination:/" + new string('a', 1 << 20));
        var buffer = TestSequence.Chunked(bytes, segmentSize);
        Assert.Equal(OperationStatus.InvalidData, new StompFrameParser().TryParse(ref buffer, out var error));
        Assert.Equal(StompParseError.HeaderLineTooLong, error);
    }

    [Theory]
    [InlineData(64 * 1024, StompParseError.FrameTooLarge)]              // default limits: the frame limit binds first
    [InlineData(2 * 1024 * 1024, StompParseError.BodyTooLarge)]
    public void TryParse_OneMebibyteBodyWithoutNul_IsAnErrorNotNeedMoreData(int maxFrameBytes, StompParseError expected)
    {
        var bytes = Utf8("SEND\ndestination:/a\n\n" + new string('a', 1 << 20));
        var buffer = TestSequence.Chunked(bytes, 4096);
        var parser = new StompFrameParser(StompLimits.Default with { MaxFrameBytes = maxFrameBytes });
        Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out var error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void TryParse_OneMebibyteOfShortHeaders_IsAnErrorNotNeedMoreData()
    {
        var limits = StompLimits.Default with { MaxHeaderCount = 1 << 20 };
        var bytes = Utf8("SEND\n" + string.Concat(Enumerable.Repeat("k:v\n", 1 << 18)));
        var buffer = TestSequence.Chunked(bytes, 4096);
        Assert.Equal(OperationStatus.InvalidData, new StompFrameParser(limits).TryParse(ref buffer, out var error));
        Assert.Equal(StompParseError.FrameTooLarge, error);
    }

    [Theory]
    [InlineData("SEND\ndestination:/")]                                  // an endless header line
    [InlineData("SEND\ndestination:/a\n\n")]                             // an endless body without content-length
    [InlineData("SEND\ncontent-length:65000\n\n")]                       // a content-length body that never ends
    [InlineData("SEND\n")]                                               // endless short headers
    public void TryParse_GrowingInput_NeverNeedsMoreDataPastTheFrameLimit(string prefix)
    {
        var limits = StompLimits.Default with { MaxHeaderCount = 100_000 };
        var parser = new StompFrameParser(limits);
        var filler = prefix == "SEND\n" ? "k:v\n" : "a";
        var text = new StringBuilder(prefix);
        while (true)
        {
            var buffer = TestSequence.Chunked(Utf8(text.ToString()), 4096);
            var length = buffer.Length;
            var status = parser.TryParse(ref buffer, out _);
            if (status == OperationStatus.InvalidData) break;
            Assert.Equal(OperationStatus.NeedMoreData, status);
            Assert.True(length <= limits.MaxFrameBytes, $"NeedMoreData with {length} bytes buffered");
            for (var i = 0; i < 997; i++) text.Append(filler);
        }
    }

    private sealed record Case(StompParseError Error, byte[] Bytes, StompVersion Version = StompVersion.V1_2, StompLimits? Limits = null);
}
