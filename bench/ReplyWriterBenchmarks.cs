using System.Buffers;
using BenchmarkDotNet.Attributes;
using WsBroker.Protocol;

namespace WsBroker.Bench;

/// <summary>The broker's replies written into a reused <see cref="ArrayBufferWriter{T}"/>: a RECEIPT, an ERROR, and a
/// <c>/user/queue/errors</c> MESSAGE, each with the receipt id as the raw bytes the parser hands out. The target is 0 B;
/// <see cref="Receipt_ThroughAnOwnedArray"/> is the previous broker code (a writer and a <c>byte[]</c> per RECEIPT) for
/// comparison.</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class ReplyWriterBenchmarks
{
    private const string ErrorMessage = "could-not-send-message: not a party of this conversation";
    private static readonly byte[] s_receiptId = "r-1234"u8.ToArray();
    private readonly ArrayBufferWriter<byte> _output = new(4096);

    [Benchmark(Baseline = true)]
    public int Receipt_ThroughAnOwnedArray()
    {
        var receiptId = "r-1234";
        var output = new ArrayBufferWriter<byte>(32 + receiptId.Length);
        StompFrameWriter.WriteCommand(output, StompCommand.Receipt);
        StompFrameWriter.WriteHeader(output, "receipt-id", receiptId, StompEscaping.V1_2);
        StompFrameWriter.WriteBodyAndEnd(output, ReadOnlySpan<byte>.Empty, writeContentLength: false);
        return output.WrittenSpan.ToArray().Length;
    }

    [Benchmark]
    public int WriteReceipt()
    {
        _output.ResetWrittenCount();
        StompFrameWriter.WriteReceipt(_output, s_receiptId, StompVersion.V1_2);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int WriteError()
    {
        _output.ResetWrittenCount();
        StompFrameWriter.WriteError(_output, "unknown destination: use /topic/..., /queue/... or /user/queue/...", s_receiptId,
            StompVersion.V1_2);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int WriteUserErrorMessage()
    {
        _output.ResetWrittenCount();
        StompFrameWriter.WriteCommand(_output, StompCommand.Message);
        StompFrameWriter.WriteHeader(_output, "subscription"u8, "sub-0"u8);
        StompFrameWriter.WriteHeader(_output, "message-id"u8, 1_234_567_890_123L);
        StompFrameWriter.WriteHeader(_output, "destination"u8, "/user/queue/errors"u8);
        StompFrameWriter.WriteHeader(_output, "content-type"u8, "text/plain"u8);
        StompFrameWriter.WriteHeader(_output, "message", ErrorMessage);
        StompFrameWriter.WriteHeader(_output, "receipt-id"u8, s_receiptId);
        StompFrameWriter.WriteTextBodyAndEnd(_output, ErrorMessage);
        return _output.WrittenCount;
    }
}
