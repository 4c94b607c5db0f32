using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using System.Buffers;
using System.Text;
using WsBroker.Protocol;

namespace WsBroker.Bench;

/// <summary>Shared by the protocol benchmarks: allocated bytes are a tracked result, and a fixed iteration count keeps a
/// run on the shared 2-core machine to a few minutes. In-process: BenchmarkDotNet's generated-project toolchain looks for
/// a project named after the assembly (WsBroker.Bench), which is bench/Bench.csproj here.</summary>
public sealed class ProtocolBenchmarkConfig : ManualConfig
{
    public ProtocolBenchmarkConfig()
    {
        AddJob(Job.Default.WithWarmupCount(5).WithIterationCount(15).WithToolchain(InProcessEmitToolchain.Instance));
        AddDiagnoser(MemoryDiagnoser.Default);
    }
}

/// <summary>The frames both protocol benchmarks use: a SEND of exactly <c>frameBytes</c> octets (content-length body).</summary>
internal static class ProtocolInputs
{
    public const string Destination = "/topic/private-chat/admin1/client1";

    /// <summary>Headers in front of the body, for a body of <paramref name="bodyLength"/> octets.</summary>
    public static string Head(int bodyLength) =>
        $"SEND\ndestination:{Destination}\ncontent-type:text/plain;charset=utf-8\nreceipt:r-1234\ncontent-length:{bodyLength}\n\n";

    public static int BodyLength(int frameBytes)
    {
        // The length's own digits change the header size: settle on the body length that makes the frame exact.
        var body = frameBytes - Head(0).Length - 1;
        while (Head(body).Length + body + 1 > frameBytes) body--;
        return body;
    }

    public static byte[] Frame(int frameBytes)
    {
        var body = BodyLength(frameBytes);
        var bytes = Encoding.UTF8.GetBytes(Head(body) + new string('x', body) + "\0");
        if (bytes.Length != frameBytes) throw new InvalidOperationException($"frame is {bytes.Length} bytes, not {frameBytes}");
        return bytes;
    }

    /// <summary>200 B in two halves (a WebSocket message boundary mid-frame); larger frames in 1 KiB or 4 KiB pieces.</summary>
    public static int SegmentSize(int frameBytes) => frameBytes <= 200 ? frameBytes / 2 : frameBytes <= 4096 ? 1024 : 4096;

    public static ReadOnlySequence<byte> Segmented(byte[] bytes, int size)
    {
        Piece? first = null, last = null;
        for (var i = 0; i < bytes.Length; i += size)
        {
            var piece = new Piece(bytes.AsMemory(i, Math.Min(size, bytes.Length - i)), last);
            first ??= piece;
            last = piece;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Piece : ReadOnlySequenceSegment<byte>
    {
        public Piece(ReadOnlyMemory<byte> memory, Piece? previous)
        {
            Memory = memory;
            if (previous is null) return;
            RunningIndex = previous.RunningIndex + previous.Memory.Length;
            previous.Next = this;
        }
    }
}
