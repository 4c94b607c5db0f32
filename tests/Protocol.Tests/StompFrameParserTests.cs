using System.Buffers;
using System.Text;

namespace WsBroker.Protocol.Tests;

public class StompFrameParserTests
{
    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Parses every frame of <paramref name="bytes"/> (as segmented by <paramref name="buffer"/>) into owned frames.</summary>
    private static List<StompFrame> ParseAll(ReadOnlySequence<byte> buffer, StompVersion version = StompVersion.V1_2)
    {
        var parser = new StompFrameParser(version: version);
        var frames = new List<StompFrame>();
        OperationStatus status;
        while ((status = parser.TryParse(ref buffer, out var error)) == OperationStatus.Done) frames.Add(parser.Frame.ToFrame());
        Assert.Equal(OperationStatus.NeedMoreData, status);
        Assert.True(buffer.IsEmpty, "trailing bytes left unconsumed");
        return frames;
    }

    private static IEnumerable<ReadOnlySequence<byte>> EveryShape(byte[] bytes)
    {
        yield return TestSequence.Whole(bytes);
        yield return TestSequence.PerByte(bytes);
        for (var at = 0; at <= bytes.Length; at++) yield return TestSequence.Split(bytes, at);
    }

    [Fact]
    public void TryParse_SeveralFramesWithHeartBeatsBetween_ParsesEachInOrder()
    {
        var bytes = Utf8("\n\r\nSEND\ndestination:/a\n\none\0\n\nSEND\r\ndestination:/b\r\n\r\ntwo\0\r\n\r\n\nMESSAGE\nx:y\n\nthree\0\n");
        foreach (var shape in EveryShape(bytes))
        {
            var frames = ParseAll(shape);
            Assert.Equal(3, frames.Count);
            Assert.Equal(["one", "two", "three"], frames.Select(f => f.BodyText));
            Assert.Equal(["/a", "/b", null], frames.Select(f => f.Headers["destination"]));
        }
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\n\n\r\n\n")]
    public void TryParse_OnlyHeartBeats_ConsumesThemAndNeedsMoreData(string wire)
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.PerByte(Utf8(wire));
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParse(ref buffer, out var error));
        Assert.Equal(StompParseError.None, error);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void TryParse_HalfACrLfHeartBeat_KeepsTheCrForTheNextRead()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("\n\r"));
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParse(ref buffer, out _));
        Assert.Equal(1, buffer.Length);
    }

    [Fact]
    public void TryParse_CrLfAndLfLinesMixedIn12_StripsTheCrOnly()
    {
        var bytes = Utf8("SEND\r\ndestination:/a\r\nx:1\n\r\nbody\r\n\0");
        foreach (var shape in EveryShape(bytes))
        {
            var frame = Assert.Single(ParseAll(shape));
            Assert.Equal("/a", frame.Headers["destination"]);
            Assert.Equal("1", frame.Headers["x"]);
            Assert.Equal("body\r\n", frame.BodyText);                 // the body is octets: its CR LF stays
        }
    }

    [Theory]
    [InlineData(StompVersion.V1_0)]
    [InlineData(StompVersion.V1_1)]
    public void TryParse_CrBeforeLfIn10And11_IsPartOfTheHeaderValue(StompVersion version)
    {
        var frame = Assert.Single(ParseAll(TestSequence.Whole(Utf8("SEND\ndestination:/a\r\n\nx\0")), version));
        Assert.Equal("/a\r", frame.Headers["destination"]);
    }

    [Theory]
    [InlineData(StompVersion.V1_0)]
    [InlineData(StompVersion.V1_1)]
    public void TryParse_CrLfCommandLineIn10And11_IsAnUnknownCommand(StompVersion version)
    {
        var parser = new StompFrameParser(version: version);
        var buffer = TestSequence.Whole(Utf8("SEND\r\ndestination:/a\n\n\0"));
        Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out var error));
        Assert.Equal(StompParseError.UnknownCommand, error);
    }

    [Fact]
    public void TryParse_ContentLengthBodyWithNuls_ReadsExactlyThatManyOctets()
    {
        var bytes = Utf8("SEND\ndestination:/a\ncontent-length:5\n\n\0a\0b\0\0SEND\ndestination:/b\n\n\0");
        foreach (var shape in EveryShape(bytes))
        {
            var frames = ParseAll(shape);
            Assert.Equal(2, frames.Count);
            Assert.Equal("\0a\0b\0"u8.ToArray(), frames[0].Body.ToArray());
            Assert.True(frames[1].Body.IsEmpty);
        }
    }

    [Fact]
    public void TryParse_ContentLengthZero_EmptyBody()
    {
        var frame = Assert.Single(ParseAll(TestSequence.Whole(Utf8("SEND\ndestination:/a\ncontent-length:0\n\n\0"))));
        Assert.True(frame.Body.IsEmpty);
    }

    [Fact]
    public void TryParse_NoContentLength_BodyEndsAtTheFirstNul()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("SEND\ndestination:/a\n\nab\0cd\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        Assert.Equal("ab"u8.ToArray(), parser.Frame.Body.ToArray());
        Assert.Equal("cd\0"u8.ToArray(), buffer.ToArray());          // what follows is the next frame's business
    }

    [Fact]
    public void TryParse_RepeatedHeaders_FirstWinsAndAllAreKept()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("MESSAGE\nfoo:World\nfoo:Hello\ncontent-length:1\ncontent-length:5\n\nx\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        var frame = parser.Frame;
        Assert.True(frame.TryGetHeader("foo"u8, out var foo));
        Assert.Equal("World"u8.ToArray(), foo.ToArray());
        Assert.Equal("World", frame.GetHeaderString("foo"u8));
        Assert.Equal(4, frame.HeaderCount);
        Assert.Equal("x"u8.ToArray(), frame.Body.ToArray());           // the first content-length (1) applies
        Assert.Equal("World", frame.ToFrame().Headers["foo"]);
        Assert.Null(frame.GetHeaderString("bar"u8));
        Assert.False(frame.HasHeader("bar"u8));
    }

    [Fact]
    public void TryParse_HeaderWithEmptyValueAndExtraColons_KeepsEverythingAfterTheFirstColon()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("CONNECT\nlogin:\npasscode:a:b::\n\n\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        Assert.True(parser.Frame.HasHeader("login"u8));
        Assert.Equal("", parser.Frame.GetHeaderString("login"u8));
        Assert.Equal("a:b::", parser.Frame.GetHeaderString("passcode"u8));
    }

    [Fact]
    public void TryParse_Escapes12_AreUndoneInNamesAndValues()
    {
        var bytes = Utf8("MESSAGE\na\\cb\\\\:x\\ny\\rz\\c\\\\\n\n\0");
        foreach (var shape in EveryShape(bytes))
        {
            var frame = Assert.Single(ParseAll(shape));
            Assert.Equal("x\ny\rz:\\", frame.Headers["a:b\\"]);
        }
    }

    [Fact]
    public void TryParse_Escapes11_NoCrEscape()
    {
        var frame = Assert.Single(ParseAll(TestSequence.Whole(Utf8("SEND\nk:a\\nb\\cc\\\\d\n\n\0")), StompVersion.V1_1));
        Assert.Equal("a\nb:c\\d", frame.Headers["k"]);

        var parser = new StompFrameParser(version: StompVersion.V1_1);
        var buffer = TestSequence.Whole(Utf8("SEND\nk:a\\rb\n\n\0"));
        Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out var error));
        Assert.Equal(StompParseError.InvalidEscape, error);
    }

    [Fact]
    public void TryParse_Version10_HasNoEscaping()
    {
        var frame = Assert.Single(ParseAll(TestSequence.Whole(Utf8("SEND\nk:a\\nb\\t\\\n\n\0")), StompVersion.V1_0));
        Assert.Equal("a\\nb\\t\\", frame.Headers["k"]);
    }

    [Theory]
    [InlineData("CONNECT")]
    [InlineData("CONNECTED")]
    public void TryParse_ConnectAndConnected_AreNeverUnescaped(string command)
    {
        var frame = Assert.Single(ParseAll(TestSequence.Whole(Utf8(command + "\npasscode:a\\nb\\c\\t\\\n\n\0"))));
        Assert.Equal("a\\nb\\c\\t\\", frame.Headers["passcode"]);
    }

    [Fact]
    public void TryParse_UnicodeHeaders_AreKeptAsUtf8()
    {
        var frame = Assert.Single(ParseAll(TestSequence.PerByte(Utf8("SEND\nnäme:日本語 😀\n\n\0"))));
        Assert.Equal("日本語 😀", frame.Headers["näme"]);
    }

    [Fact]
    public void TryParse_HeadersAtExactLimits_AreAccepted()
    {
        var limits = new StompLimits { MaxHeaderCount = 3, MaxHeaderLineBytes = 20, MaxBodyBytes = 10, MaxFrameBytes = 1024 };
        var line = "k:" + new string('v', 18);                            // exactly 20 bytes
        var bytes = Utf8($"SEND\n{line}\n{line}\r\n{line}\n\n0123456789\0");
        foreach (var shape in EveryShape(bytes))
        {
            var parser = new StompFrameParser(limits);
            var buffer = shape;
            Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out var error));
            Assert.Equal(StompParseError.None, error);
            Assert.Equal(3, parser.Frame.HeaderCount);
            Assert.Equal(10, parser.Frame.Body.Length);
        }
    }

    [Fact]
    public void TryParse_FrameOfExactlyMaxFrameBytes_IsAccepted()
    {
        var limits = new StompLimits { MaxFrameBytes = 64 };
        var head = Utf8("SEND\ndestination:/a\n\n");
        var bytes = head.Concat(Enumerable.Repeat((byte)'x', 64 - head.Length - 1)).Append((byte)0).ToArray();
        Assert.Equal(64, bytes.Length);
        foreach (var shape in EveryShape(bytes))
        {
            var buffer = shape;
            Assert.Equal(OperationStatus.Done, new StompFrameParser(limits).TryParse(ref buffer, out _));
        }
    }

    [Fact]
    public void TryParse_ReusedParser_ForgetsThePreviousFrame()
    {
        var parser = new StompFrameParser();
        var first = TestSequence.Whole(Utf8("SEND\ndestination:/a\nreceipt:1\n\nbody\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref first, out _));
        var second = TestSequence.Whole(Utf8("BEGIN\ntransaction:t\n\n\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref second, out _));
        Assert.Equal(StompCommand.Begin, parser.Frame.Command);
        Assert.Equal(1, parser.Frame.HeaderCount);
        Assert.False(parser.Frame.HasHeader("receipt"u8));
        Assert.True(parser.Frame.Body.IsEmpty);
    }

    [Fact]
    public void TryParse_AfterAnError_FrameHasNoCommand()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("NOPE\n\n\0"));
        Assert.Equal(OperationStatus.InvalidData, parser.TryParse(ref buffer, out _));
        Assert.Equal(StompCommand.None, parser.Frame.Command);
    }

    [Fact]
    public void FrameView_HeaderIndexOutOfRange_Throws()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("BEGIN\ntransaction:t\n\n\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => parser.Frame.GetHeaderName(1).Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => parser.Frame.GetHeaderValue(-1).Length);
    }

    [Fact]
    public void Constructor_InvalidLimits_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StompFrameParser(new StompLimits { MaxHeaderCount = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StompFrameParser(new StompLimits { MaxFrameBytes = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StompFrameParser(new StompLimits { MaxBodyBytes = -1 }));
    }

    [Fact]
    public void TryParse_ReusableParserAfterWarmUp_AllocatesNothing()
    {
        var body = new string('b', 200 - "SEND\ndestination:/topic/private-chat/admin1/client1\ncontent-type:text/plain\ncontent-length:111\n\n".Length - 1);
        var wire = Utf8($"SEND\ndestination:/topic/private-chat/admin1/client1\ncontent-type:text/plain\ncontent-length:{body.Length}\n\n{body}\0");
        Assert.Equal(200, wire.Length);
        var single = TestSequence.Whole(wire);
        var split = TestSequence.Split(wire, 100);
        var parser = new StompFrameParser();
        var done = 0;
        for (var i = 0; i < 100; i++) done += ParseOnce(parser, single) + ParseOnce(parser, split);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++) done += ParseOnce(parser, single) + ParseOnce(parser, split);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(2200, done);
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void TryParse_ScratchReleasedAfterEveryFrame_AllocatesNothingAfterWarmUp()
    {
        // What a session does after each read: the scratch goes back to the pools and is rented again, not allocated.
        var wire = TestSequence.Whole(Utf8("SEND\ndestination:/topic/a\nreceipt:r-1\ncontent-type:text/plain\n\nhello\0"));
        var parser = new StompFrameParser();
        var done = 0;
        for (var i = 0; i < 100; i++)
        {
            done += ParseOnce(parser, wire);
            parser.ReleaseScratch();
        }
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            done += ParseOnce(parser, wire);
            parser.ReleaseScratch();
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(1100, done);
        Assert.Equal(0, allocated);
        Assert.Equal(0, parser.HeaderCount);                            // released: the frame view is empty
    }

    private static int ParseOnce(StompFrameParser parser, ReadOnlySequence<byte> input)
    {
        var buffer = input;
        return parser.TryParse(ref buffer, out _) == OperationStatus.Done && buffer.IsEmpty
            && parser.Frame.TryGetHeader("destination"u8, out var destination) && destination.Length > 0 ? 1 : 0;
    }

    [Theory]
    [InlineData("CONNECT\nlogin:u\n\n\n\0", StompVersion.V1_2)]
    [InlineData("CONNECT\nlogin:u\n\n\r\n\0", StompVersion.V1_2)]
    [InlineData("CONNECT\nlogin:u\n\n\n\0", StompVersion.V1_0)]
    [InlineData("CONNECT\nlogin:u\n\n\r\n\0", StompVersion.V1_0)]
    [InlineData("STOMP\naccept-version:1.2\nhost:h\n\n\r\n\0", StompVersion.V1_2)]
    [InlineData("CONNECT\nlogin:u\ncontent-length:1\n\n\n\0", StompVersion.V1_2)]
    public void TryParse_ConnectWithASingleEolBody_IsAcceptedWithAnEmptyBody(string wire, StompVersion version)
    {
        foreach (var shape in EveryShape(Utf8(wire)))
        {
            var frame = Assert.Single(ParseAll(shape, version));
            Assert.True(frame.Command is StompCommand.Connect or StompCommand.Stomp);
            Assert.True(frame.Body.IsEmpty);
        }
    }

    [Theory]
    [InlineData("CONNECT\nlogin:u\n\n\n\n\0")]
    [InlineData("CONNECT\nlogin:u\n\n\r\0")]
    [InlineData("CONNECT\nlogin:u\n\n \0")]
    [InlineData("CONNECT\nlogin:u\n\n\n\r\n\0")]
    [InlineData("SUBSCRIBE\nid:1\ndestination:/a\n\n\n\0")]
    [InlineData("DISCONNECT\n\n\r\n\0")]
    public void TryParse_OtherBodyOnAFrameWithoutBody_IsStillRefused(string wire)
    {
        foreach (var shape in EveryShape(Utf8(wire)))
        {
            var buffer = shape;
            Assert.Equal(OperationStatus.InvalidData, new StompFrameParser().TryParse(ref buffer, out var error));
            Assert.Equal(StompParseError.BodyNotAllowed, error);
        }
    }

    [Fact]
    public void FrameView_HeadersAnAckNeeds_AreReadWithoutAllocating()
    {
        var parser = new StompFrameParser();
        var buffer = TestSequence.Whole(Utf8("ACK\nid:12-3\nmessage-id:12\nsubscription:sub\\c1\ntransaction:tx\nreceipt:r\\n1\ndestination:/topic/a\n\n\0"));
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        ReadOnlySpan<byte> id = default, messageId = default, subscription = default, transaction = default, receipt = default, destination = default;
        for (var round = 0; round < 2; round++)                          // the first round warms up the JIT
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var frame = parser.Frame;
            var all = frame.TryGetHeader("id"u8, out id) & frame.TryGetHeader("message-id"u8, out messageId)
                & frame.TryGetHeader("subscription"u8, out subscription) & frame.TryGetHeader("transaction"u8, out transaction)
                & frame.TryGetHeader("receipt"u8, out receipt) & frame.TryGetHeader("destination"u8, out destination);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(all);
            if (round == 1) Assert.Equal(0, allocated);
        }
        Assert.Equal("12-3"u8.ToArray(), id.ToArray());
        Assert.Equal("12"u8.ToArray(), messageId.ToArray());
        Assert.Equal("sub:1"u8.ToArray(), subscription.ToArray());       // values are unescaped (STOMP 1.2 \c is ':')
        Assert.Equal("tx"u8.ToArray(), transaction.ToArray());
        Assert.Equal("r\n1"u8.ToArray(), receipt.ToArray());
        Assert.Equal("/topic/a"u8.ToArray(), destination.ToArray());
    }
}
