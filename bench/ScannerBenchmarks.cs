using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Options;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Bench;

/// <summary>One tick of the heart-beat scanner over idle STOMP sessions (CONNECT with heart-beats 10,000,10,000, one
/// SUBSCRIBE), at a time when nothing is due: what the one timer structure costs per tick, the steady state of an idle
/// node (issue 17: heart-beats for 19,000 idle connections under 2% of one core; the scanner ticks at most every second).</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class ScannerBenchmarks
{
    private SessionRegistry _sessions = null!;
    private long _now;

    [Params(1_000, 19_000)]
    public int Sessions { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var services = BenchSessions.Services();
        _sessions = services.Sessions;
        var issuer = new JwtIssuer(Options.Create(new AuthOptions { SigningKey = "benchmark-signing-key-0123456789abcdef" }));
        for (var i = 0; i < Sessions; i++)
        {
            var id = "s" + i;
            var session = new StompSession(new InMemoryTransport { Discard = true }, services, id, null);
            var token = issuer.Issue(id, "client", id, TimeSpan.FromHours(1));
            BenchSessions.Feed(session, Encoding.UTF8.GetBytes(
                $"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:10000,10000\nAuthorization:Bearer {token}\n\n\0" +
                $"SUBSCRIBE\nid:sub-0\ndestination:/topic/idle/{i}\n\n\0"));
            session.DrainOutbox(new ArrayBufferWriter<byte>());
            _sessions.Add(session);
        }
        _now = Environment.TickCount64 + 1_000;                 // within every interval: nothing is due
    }

    [Benchmark]
    public void Scan_NothingDue() => HeartBeatScanner.Scan(_sessions, _now);
}
