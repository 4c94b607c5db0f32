using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using WsBroker.Protocol;

namespace WsBroker.Bench;

/// <summary>Writing the same SEND frames the parser benchmarks read, into a reused <see cref="ArrayBufferWriter{T}"/>:
/// the whole-frame API (an owned <see cref="StompFrame"/>), the piecewise API with UTF-8 header literals (the hot path),
/// and the piecewise API with a multi-segment body.</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class WriterBenchmarks
{
    private static readonly byte[] s_destination = Encoding.UTF8.GetBytes(ProtocolInputs.Destination);
    private readonly ArrayBufferWriter<byte> _output = new(128 * 1024);
    private StompFrame _frame = null!;
    private byte[] _body = [];
    private ReadOnlySequence<byte> _segmentedBody;

    [Params(200, 4096, 65536)]
    public int FrameBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _body = new byte[ProtocolInputs.BodyLength(FrameBytes)];
        Array.Fill(_body, (byte)'x');
        _segmentedBody = ProtocolInputs.Segmented(_body, ProtocolInputs.SegmentSize(FrameBytes));
        _frame = new StompFrame(StompCommand.Send, new StompHeaders()
            .Add("destination", ProtocolInputs.Destination)
            .Add("content-type", "text/plain;charset=utf-8")
            .Add("receipt", "r-1234"), _body);
        var expected = ProtocolInputs.Frame(FrameBytes);
        foreach (var written in new[] { Write_WholeFrame(), Write_Piecewise(), Write_PiecewiseMultiSegmentBody() })
            if (written != FrameBytes || !_output.WrittenSpan.SequenceEqual(expected))
                throw new InvalidOperationException("the writer does not produce the parser benchmark's frame");
    }

    [Benchmark(Baseline = true)]
    public int Write_WholeFrame()
    {
        _output.ResetWrittenCount();
        StompFrameWriter.Write(_output, _frame);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int Write_Piecewise()
    {
        _output.ResetWrittenCount();
        StompFrameWriter.WriteCommand(_output, StompCommand.Send);
        StompFrameWriter.WriteHeader(_output, "destination"u8, s_destination);
        StompFrameWriter.WriteHeader(_output, "content-type"u8, "text/plain;charset=utf-8"u8);
        StompFrameWriter.WriteHeader(_output, "receipt"u8, "r-1234"u8);
        StompFrameWriter.WriteBodyAndEnd(_output, _body);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int Write_PiecewiseMultiSegmentBody()
    {
        _output.ResetWrittenCount();
        StompFrameWriter.WriteCommand(_output, StompCommand.Send);
        StompFrameWriter.WriteHeader(_output, "destination"u8, s_destination);
        StompFrameWriter.WriteHeader(_output, "content-type"u8, "text/plain;charset=utf-8"u8);
        StompFrameWriter.WriteHeader(_output, "receipt"u8, "r-1234"u8);
        StompFrameWriter.WriteBodyAndEnd(_output, _segmentedBody);
        return _output.WrittenCount;
    }
}
