using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using WsBroker.Broker.Hosting;

namespace WsBroker.Bench;

/// <summary>The pipeline endpoint's read of an upgrade's head (<see cref="UpgradeRequest.Peek"/>): a usual head in one read,
/// and a head of the whole 40 KB Kestrel allows arriving one byte per read, as a client trickling it would send it. The
/// endpoint tells each call how much the one before searched; <c>RememberSearched = false</c> searches from the start
/// every time, as it did before.</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class UpgradeBenchmarks
{
    private const int MaxBytes = 8 * 1024 + 32 * 1024;
    private byte[] _usual = null!;
    private byte[] _trickled = null!;

    [Params(false, true)]
    public bool RememberSearched { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _usual = Encoding.ASCII.GetBytes("GET /ws HTTP/1.1\r\nHost: broker:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n");
        var head = new StringBuilder("GET /ws HTTP/1.1\r\n");
        while (head.Length < MaxBytes - 8) head.Append("a:\r\n");
        _trickled = Encoding.ASCII.GetBytes(head.Append("\r\n").ToString());
    }

    [Benchmark]
    public UpgradePeek Usual() => UpgradeRequest.Peek(new ReadOnlySequence<byte>(_usual), MaxBytes, 100, out _, out _);

    /// <summary>One call per byte until the head ends (then it is too many fields for Kestrel, which is not this
    /// benchmark's business).</summary>
    [Benchmark]
    public UpgradePeek Trickled()
    {
        var peek = UpgradePeek.NeedMoreData;
        for (var length = 1; length <= _trickled.Length && peek == UpgradePeek.NeedMoreData; length++)
            peek = UpgradeRequest.Peek(new ReadOnlySequence<byte>(_trickled, 0, length), MaxBytes, 100, out _, out _,
                RememberSearched ? length - 1 : 0);
        return peek;
    }
}
