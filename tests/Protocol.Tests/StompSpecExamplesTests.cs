using System.Buffers;
using System.Text;

namespace WsBroker.Protocol.Tests;

/// <summary>
/// Every example frame of the STOMP 1.2 specification (https://stomp.github.io/stomp-specification-1.2.html), fed whole,
/// split at every offset, one byte per segment and incrementally. Two spec errata are corrected so the frames follow
/// the spec's own grammar: DISCONNECT/RECEIPT examples lack the blank line that ends the header block, and the ERROR
/// example's content-length (171) is one more than its 170-octet body.
/// </summary>
public class StompSpecExamplesTests
{
    private const string ErrorBody =
        "The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\nHello queue a!\n-----\n"
        + "Did not contain a destination header, which is REQUIRED\nfor message propagation.\n";

    private static readonly Dictionary<string, Example> s_examples = new()
    {
        ["CONNECT"] = new("CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0", StompCommand.Connect,
            [("accept-version", "1.2"), ("host", "stomp.github.org")], ""),
        ["CONNECT with versions and heart-beat"] = new(
            "CONNECT\naccept-version:1.0,1.1,2.0\nhost:stomp.github.org\nheart-beat:4000,5000\nlogin:bob\npasscode:s3cr:t\n\n\0",
            StompCommand.Connect,
            [("accept-version", "1.0,1.1,2.0"), ("host", "stomp.github.org"), ("heart-beat", "4000,5000"), ("login", "bob"), ("passcode", "s3cr:t")], ""),
        ["STOMP"] = new("STOMP\naccept-version:1.2\nhost:stomp.github.org\n\n\0", StompCommand.Stomp,
            [("accept-version", "1.2"), ("host", "stomp.github.org")], ""),
        ["CONNECTED"] = new("CONNECTED\nversion:1.2\n\n\0", StompCommand.Connected, [("version", "1.2")], ""),
        ["CONNECTED with heart-beat"] = new("CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s-1\nserver:Apache/1.2\n\n\0", StompCommand.Connected,
            [("version", "1.2"), ("heart-beat", "0,0"), ("session", "s-1"), ("server", "Apache/1.2")], ""),
        ["SEND"] = new("SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0", StompCommand.Send,
            [("destination", "/queue/a"), ("content-type", "text/plain")], "hello queue a\n"),
        ["SEND with receipt"] = new("SEND\ndestination:/queue/a\nreceipt:message-12345\n\nhello queue a\0", StompCommand.Send,
            [("destination", "/queue/a"), ("receipt", "message-12345")], "hello queue a"),
        ["SEND in transaction"] = new("SEND\ndestination:/queue/a\ntransaction:tx1\ncontent-type:text/plain\n\nhello queue a\n\0", StompCommand.Send,
            [("destination", "/queue/a"), ("transaction", "tx1"), ("content-type", "text/plain")], "hello queue a\n"),
        ["SEND with content-length"] = new("SEND\ndestination:/queue/a\ncontent-type:text/plain\ncontent-length:13\n\nhello queue a\0", StompCommand.Send,
            [("destination", "/queue/a"), ("content-type", "text/plain"), ("content-length", "13")], "hello queue a"),
        ["SUBSCRIBE"] = new("SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0", StompCommand.Subscribe,
            [("id", "0"), ("destination", "/queue/foo"), ("ack", "client")], ""),
        ["SUBSCRIBE ack auto"] = new("SUBSCRIBE\nid:1\ndestination:/queue/foo\nack:auto\n\n\0", StompCommand.Subscribe,
            [("id", "1"), ("destination", "/queue/foo"), ("ack", "auto")], ""),
        ["SUBSCRIBE ack client-individual"] = new("SUBSCRIBE\nid:2\ndestination:/queue/foo\nack:client-individual\n\n\0", StompCommand.Subscribe,
            [("id", "2"), ("destination", "/queue/foo"), ("ack", "client-individual")], ""),
        ["UNSUBSCRIBE"] = new("UNSUBSCRIBE\nid:0\n\n\0", StompCommand.Unsubscribe, [("id", "0")], ""),
        ["ACK"] = new("ACK\nid:12345\ntransaction:tx1\n\n\0", StompCommand.Ack, [("id", "12345"), ("transaction", "tx1")], ""),
        ["NACK"] = new("NACK\nid:12345\ntransaction:tx1\n\n\0", StompCommand.Nack, [("id", "12345"), ("transaction", "tx1")], ""),
        ["BEGIN"] = new("BEGIN\ntransaction:tx1\n\n\0", StompCommand.Begin, [("transaction", "tx1")], ""),
        ["COMMIT"] = new("COMMIT\ntransaction:tx1\n\n\0", StompCommand.Commit, [("transaction", "tx1")], ""),
        ["ABORT"] = new("ABORT\ntransaction:tx1\n\n\0", StompCommand.Abort, [("transaction", "tx1")], ""),
        ["DISCONNECT with receipt"] = new("DISCONNECT\nreceipt:77\n\n\0", StompCommand.Disconnect, [("receipt", "77")], ""),
        ["MESSAGE"] = new("MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0",
            StompCommand.Message,
            [("subscription", "0"), ("message-id", "007"), ("destination", "/queue/a"), ("content-type", "text/plain")], "hello queue a"),
        ["MESSAGE with ack"] = new("MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\nack:d-1\n\nhi\0", StompCommand.Message,
            [("subscription", "0"), ("message-id", "007"), ("destination", "/queue/a"), ("ack", "d-1")], "hi"),
        ["RECEIPT"] = new("RECEIPT\nreceipt-id:77\n\n\0", StompCommand.Receipt, [("receipt-id", "77")], ""),
        ["RECEIPT for message"] = new("RECEIPT\nreceipt-id:message-12345\n\n\0", StompCommand.Receipt, [("receipt-id", "message-12345")], ""),
        ["ERROR with body"] = new(
            "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:170\nmessage:malformed frame received\n\n" + ErrorBody + "\0",
            StompCommand.Error,
            [("receipt-id", "message-12345"), ("content-type", "text/plain"), ("content-length", "170"), ("message", "malformed frame received")],
            ErrorBody),
        ["ERROR version mismatch"] = new("ERROR\nversion:1.2,2.1\ncontent-type:text/plain\n\nSupported protocol versions are 1.2 2.1\0",
            StompCommand.Error, [("version", "1.2,2.1"), ("content-type", "text/plain")], "Supported protocol versions are 1.2 2.1"),
    };

    public static TheoryData<string> Names => [.. s_examples.Keys];

    [Theory]
    [MemberData(nameof(Names))]
    public void TryParse_SpecExampleWhole_ParsesEveryPartAndConsumesExactly(string name)
    {
        var example = s_examples[name];
        var parser = new StompFrameParser();
        // A following byte must be left in the buffer: the parser consumes exactly one frame.
        var buffer = TestSequence.Whole([.. example.Bytes, (byte)'X']);
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out var error));
        Assert.Equal(StompParseError.None, error);
        AssertFrame(example, parser.Frame);
        Assert.Equal("X"u8.ToArray(), buffer.ToArray());
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void TryParse_SpecExampleSplitAtEveryOffset_ParsesTheSameFrame(string name)
    {
        var example = s_examples[name];
        var parser = new StompFrameParser();
        for (var at = 0; at <= example.Bytes.Length; at++)
        {
            var buffer = TestSequence.Split(example.Bytes, at);
            Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
            AssertFrame(example, parser.Frame);
            Assert.True(buffer.IsEmpty, $"split at {at}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void TryParse_SpecExampleOneBytePerSegment_ParsesTheSameFrame(string name)
    {
        var example = s_examples[name];
        var parser = new StompFrameParser();
        var buffer = TestSequence.PerByte(example.Bytes);
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        AssertFrame(example, parser.Frame);
        Assert.True(buffer.IsEmpty);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void TryParse_SpecExampleFedByteByByte_NeedsMoreDataUntilTheLastByte(string name)
    {
        var example = s_examples[name];
        var parser = new StompFrameParser();
        for (var length = 0; length < example.Bytes.Length; length++)
        {
            var buffer = TestSequence.PerByte(example.Bytes[..length]);
            Assert.Equal(OperationStatus.NeedMoreData, parser.TryParse(ref buffer, out var error));
            Assert.Equal(StompParseError.None, error);
            Assert.Equal(length, buffer.Length);                     // nothing consumed from an unfinished frame
        }
        var whole = TestSequence.PerByte(example.Bytes);
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref whole, out _));
        AssertFrame(example, parser.Frame);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void StaticTryParse_SpecExample_ReturnsAnOwnedFrame(string name)
    {
        var example = s_examples[name];
        var buffer = TestSequence.Split(example.Bytes, example.Bytes.Length / 2);
        Assert.Equal(OperationStatus.Done, StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var frame, out _));
        Assert.NotNull(frame);
        Assert.Equal(example.Command, frame.Command);
        Assert.Equal(example.Headers.Select(h => new KeyValuePair<string, string>(h.Name, h.Value)), frame.Headers);
        Assert.Equal(example.Body, frame.BodyText);
        Assert.True(buffer.IsEmpty);
    }

    private static void AssertFrame(Example example, StompFrameView frame)
    {
        Assert.Equal(example.Command, frame.Command);
        Assert.Equal(example.Headers.Length, frame.HeaderCount);
        for (var i = 0; i < example.Headers.Length; i++)
        {
            Assert.Equal(example.Headers[i].Name, Encoding.UTF8.GetString(frame.GetHeaderName(i)));
            Assert.Equal(example.Headers[i].Value, Encoding.UTF8.GetString(frame.GetHeaderValue(i)));
        }
        Assert.Equal(example.Body, Encoding.UTF8.GetString(frame.Body.ToArray()));
    }

    private sealed record Example(string Wire, StompCommand Command, (string Name, string Value)[] Headers, string Body)
    {
        public byte[] Bytes { get; } = Encoding.UTF8.GetBytes(Wire);
    }
}
