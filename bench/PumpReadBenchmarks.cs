using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;

namespace WsBroker.Bench;

/// <summary>What the pump's wait on the pipe itself costs a message (<c>TransportPump.RunAsync</c>, pipeline transport): it
/// waits with <c>ReadAsync</c> on Kestrel's input pipe and gives the bytes back unexamined, so that an idle session holds only
/// that wait; the transport's read then reads the same pipe again. <c>OneRead</c> is a read without the wait;
/// <c>WaitThenRead</c> adds the wait's read and its <c>AdvanceTo</c>, both completing at once as they do once bytes came.
/// The difference is the price per message of the idle session's smaller footprint.</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class PumpReadBenchmarks
{
    private static readonly byte[] s_frame = new byte[64];     // a small masked frame: a chat SEND or a heart-beat batch
    private Pipe _pipe = null!;

    [GlobalSetup]
    public void Setup() => _pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));

    [Benchmark(Baseline = true)]
    public async ValueTask<long> OneRead()
    {
        await _pipe.Writer.WriteAsync(s_frame);
        var read = await _pipe.Reader.ReadAsync();
        var length = read.Buffer.Length;
        _pipe.Reader.AdvanceTo(read.Buffer.End);
        return length;
    }

    [Benchmark]
    public async ValueTask<long> WaitThenRead()
    {
        await _pipe.Writer.WriteAsync(s_frame);
        var ready = await _pipe.Reader.ReadAsync();
        _pipe.Reader.AdvanceTo(ready.Buffer.Start, ready.Buffer.Start);
        var read = await _pipe.Reader.ReadAsync();
        var length = read.Buffer.Length;
        _pipe.Reader.AdvanceTo(read.Buffer.End);
        return length;
    }
}
