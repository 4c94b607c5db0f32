using System.Buffers;
using BenchmarkDotNet.Attributes;
using WsBroker.Protocol;

namespace WsBroker.Bench;

/// <summary>Parsing one SEND frame of <see cref="FrameBytes"/> octets with the reusable per-connection parser
/// (the broker's read loop), from one segment and from several; plus the allocating static API for comparison.</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class ParserBenchmarks
{
    private readonly StompFrameParser _parser = new();
    private ReadOnlySequence<byte> _single;
    private ReadOnlySequence<byte> _multi;

    [Params(200, 4096, 65536)]
    public int FrameBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var bytes = ProtocolInputs.Frame(FrameBytes);
        _single = new ReadOnlySequence<byte>(bytes);
        _multi = ProtocolInputs.Segmented(bytes, ProtocolInputs.SegmentSize(FrameBytes));
        if (Parse_SingleSegment() != FrameBytes || Parse_MultiSegment() != FrameBytes)
            throw new InvalidOperationException("the benchmark frame does not parse");
    }

    [Benchmark(Baseline = true)]
    public long Parse_SingleSegment()
    {
        var buffer = _single;
        return _parser.TryParse(ref buffer, out _) == OperationStatus.Done ? _single.Length - buffer.Length : -1;
    }

    [Benchmark]
    public long Parse_MultiSegment()
    {
        var buffer = _multi;
        return _parser.TryParse(ref buffer, out _) == OperationStatus.Done ? _multi.Length - buffer.Length : -1;
    }

    [Benchmark]
    public StompFrame? Parse_Allocating()
    {
        var buffer = _single;
        StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var frame, out _);
        return frame;
    }
}
