using System.Buffers;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace WsBroker.Protocol.Tests;

/// <summary>A random frame to write and parse back, with the version it is written in and where to split the bytes.</summary>
public sealed record FrameCase(StompCommand Command, StompVersion Version, (string Name, string Value)[] Headers, byte[] Body, int Split)
{
    public StompEscaping Escaping => StompFrameWriter.EscapeMode(Command, Version);

    public StompFrame ToFrame()
    {
        var headers = new StompHeaders();
        foreach (var (name, value) in Headers) headers.Add(name, value);
        return new StompFrame(Command, headers, Body);
    }

    public override string ToString() =>
        $"{Command} {Version} [{string.Join(", ", Headers.Select(h => $"\"{Escape(h.Name)}\"=\"{Escape(h.Value)}\""))}] body {Convert.ToHexString(Body)} split {Split}";

    private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\r", "\\r").Replace("\n", "\\n");
}

/// <summary>FsCheck generators: commands of both directions, header text full of characters that need escaping (and
/// unicode, including surrogate pairs), binary bodies with NULs for commands that may have a body.</summary>
public static class StompArbitraries
{
    private static readonly string[] s_plain = ["a", "Z", "9", "-", "/", "_", " ", ".", "\t", "é", "日", "😀", "\u00a0"];
    private static readonly string[] s_special = ["\\", ":", "\n", "\r", "\\n", "\\c"];

    private static Gen<string> Text(bool allowEmpty, bool allowColon, bool allowLineBreaks)
    {
        var pieces = s_plain.Concat(s_special.Where(p => (allowColon || !p.Contains(':')) && (allowLineBreaks || p.IndexOfAny(['\r', '\n']) < 0))).ToArray();
        return from count in Gen.Choose(allowEmpty ? 0 : 1, 12)
               from parts in Gen.Elements(pieces).ArrayOf(count)
               select string.Concat(parts);
    }

    public static Arbitrary<FrameCase> FrameCase()
    {
        var commands = Enum.GetValues<StompCommand>().Where(c => c != StompCommand.None).ToArray();
        var gen =
            from command in Gen.Elements(commands)
            from version in Gen.Elements(StompVersion.V1_0, StompVersion.V1_1, StompVersion.V1_2)
            let escaping = StompFrameWriter.EscapeMode(command, version)
            // Without escaping CR/LF cannot be represented and a ':' in a name cannot be told from the separator.
            let escaped = escaping != StompEscaping.None
            from count in Gen.Choose(0, 8)
            from names in Text(false, escaped, escaped).Where(n => n != "content-length").ArrayOf(count)
            from values in Text(true, true, escaped).ArrayOf(count)
            from body in command.MayHaveBody() ? Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf() : Gen.Constant(Array.Empty<byte>())
            from split in Gen.Choose(0, int.MaxValue)
            select new FrameCase(command, version, names.Zip(values).ToArray(), body, split);
        return gen.ToArbitrary();
    }
}

[Properties(Arbitrary = [typeof(StompArbitraries)], MaxTest = 300)]
public class StompFrameRoundTripProperties
{
    private static byte[] Write(FrameCase c)
    {
        var output = new ArrayBufferWriter<byte>();
        StompFrameWriter.Write(output, c.ToFrame(), c.Version);
        return output.WrittenSpan.ToArray();
    }

    private static void AssertRoundTrip(FrameCase c, ReadOnlySequence<byte> input)
    {
        var parser = new StompFrameParser(version: c.Version);
        var buffer = input;
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out var error));
        Assert.Equal(StompParseError.None, error);
        Assert.True(buffer.IsEmpty);
        var parsed = parser.Frame.ToFrame();
        Assert.Equal(c.Command, parsed.Command);
        var expected = c.Headers.Select(h => new KeyValuePair<string, string>(h.Name, h.Value)).ToList();
        if (c.Command.MayHaveBody()) expected.Add(new("content-length", c.Body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(expected, parsed.Headers);
        Assert.Equal(c.Body, parsed.Body.ToArray());
    }

    [Property]
    public void WriteThenParse_Whole_GivesTheSameFrame(FrameCase c) => AssertRoundTrip(c, TestSequence.Whole(Write(c)));

    [Property]
    public void WriteThenParse_SplitAtRandomOffset_GivesTheSameFrame(FrameCase c)
    {
        var bytes = Write(c);
        AssertRoundTrip(c, TestSequence.Split(bytes, c.Split % (bytes.Length + 1)));
    }

    [Property]
    public void WriteThenParse_RandomSegmentSize_GivesTheSameFrame(FrameCase c)
    {
        var bytes = Write(c);
        AssertRoundTrip(c, TestSequence.Chunked(bytes, 1 + c.Split % 17));
    }

    [Property]
    public void Write_PiecewiseApi_EqualsWholeFrameApi(FrameCase c)
    {
        var chars = new ArrayBufferWriter<byte>();
        StompFrameWriter.WriteCommand(chars, c.Command);
        foreach (var (name, value) in c.Headers) StompFrameWriter.WriteHeader(chars, name, value, c.Escaping);
        StompFrameWriter.WriteBodyAndEnd(chars, c.Body, writeContentLength: c.Command.MayHaveBody());

        var bytes = new ArrayBufferWriter<byte>();
        StompFrameWriter.WriteCommand(bytes, c.Command);
        foreach (var (name, value) in c.Headers) StompFrameWriter.WriteHeader(bytes, Encoding.UTF8.GetBytes(name), Encoding.UTF8.GetBytes(value), c.Escaping);
        StompFrameWriter.WriteBodyAndEnd(bytes, TestSequence.Chunked(c.Body, 1 + c.Split % 7), writeContentLength: c.Command.MayHaveBody());

        var whole = Write(c);
        Assert.Equal(whole, chars.WrittenSpan.ToArray());
        Assert.Equal(whole, bytes.WrittenSpan.ToArray());
    }

    [Property]
    public void Parse_TwoFramesWithHeartBeats_GivesBothInOrder(FrameCase first, FrameCase second)
    {
        // Both frames must be parsed in one version; write the second in the first one's.
        second = second with { Version = first.Version };
        if (StompFrameWriter.EscapeMode(second.Command, second.Version) == StompEscaping.None
            && second.Headers.Any(h => h.Name.IndexOfAny([':', '\r', '\n']) >= 0 || h.Value.IndexOfAny(['\r', '\n']) >= 0))
            second = second with { Headers = [] };
        byte[] stream = [.. Write(first), (byte)'\n', .. Write(second), (byte)'\n', (byte)'\n'];
        var buffer = TestSequence.Chunked(stream, 1 + first.Split % 64);
        var parser = new StompFrameParser(version: first.Version);
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        Assert.Equal(first.Command, parser.Frame.Command);
        Assert.Equal(first.Body, parser.Frame.Body.ToArray());
        Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
        Assert.Equal(second.Command, parser.Frame.Command);
        Assert.Equal(second.Body, parser.Frame.Body.ToArray());
        Assert.Equal(OperationStatus.NeedMoreData, parser.TryParse(ref buffer, out _));
        Assert.True(buffer.IsEmpty);
    }

    [Property]
    public void Parse_CorruptedFrame_SameAnswerWhateverTheSegmentationAndNeverThrows(FrameCase c, byte value, int position)
    {
        var bytes = Write(c);
        bytes[(position & int.MaxValue) % bytes.Length] = value;
        var answers = new[]
        {
            TestSequence.Whole(bytes), TestSequence.Split(bytes, c.Split % (bytes.Length + 1)), TestSequence.PerByte(bytes),
        }.Select(input =>
        {
            var parser = new StompFrameParser(version: c.Version);
            var buffer = input;
            var status = parser.TryParse(ref buffer, out var error);
            var frame = status == OperationStatus.Done ? parser.Frame.ToFrame().ToString() : "";
            return (status, error, buffer.Length, frame);
        }).ToList();
        Assert.Equal(answers[0], answers[1]);
        Assert.Equal(answers[0], answers[2]);
    }

    [Property]
    public void ParseNext_CorruptedFrameTrickled_AnswersAsTryParseAtEveryByte(FrameCase c, byte value, int position)
    {
        var bytes = Write(c);
        bytes[(position & int.MaxValue) % bytes.Length] = value;
        var streamed = new StompFrameParser(version: c.Version);
        var start = 0;
        for (var end = 0; end <= bytes.Length; end++)
        {
            var expected = TestSequence.Whole(bytes[start..end]);
            var fresh = new StompFrameParser(version: c.Version);
            var expectedStatus = fresh.TryParse(ref expected, out var expectedError);
            var buffer = TestSequence.Split(bytes[start..end], c.Split % (end - start + 1));
            Assert.Equal(expectedStatus, streamed.TryParseNext(ref buffer, out var error));
            Assert.Equal(expectedError, error);
            Assert.Equal(expected.Length, buffer.Length);
            if (expectedStatus == OperationStatus.InvalidData) return;
            if (expectedStatus == OperationStatus.Done)
            {
                Assert.Equal(fresh.Frame.ToFrame().ToString(), streamed.Frame.ToFrame().ToString());
                end--;                                                     // parse what is left before the next byte
            }
            start = end + (expectedStatus == OperationStatus.Done ? 1 : 0) - (int)buffer.Length;
        }
    }
}
