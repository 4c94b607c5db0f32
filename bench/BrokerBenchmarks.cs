using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Connections;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;

namespace WsBroker.Bench;

/// <summary>Matching a destination against 10,000 subscriptions: all exact, or all wildcard patterns.</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class RouterBenchmarks
{
    private TopicRouter _exact = null!;
    private TopicRouter _wildcard = null!;
    private string[] _destinations = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var sink = new NullSink();
        _exact = new TopicRouter();
        _wildcard = new TopicRouter();
        for (var i = 0; i < 10_000; i++)
        {
            _exact.Add(new Subscription(sink, "s", $"/topic/private-chat/admin{i % 100}/client{i}", AckMode.Auto, i));
            // Half '*' in the middle, half '#' at the end: the shapes the chat and general topics use.
            _wildcard.Add(new Subscription(sink, "s", i % 2 == 0 ? $"/topic/private-chat/admin{i}/*" : $"/topic/news/region{i}/#", AckMode.Auto, i));
        }
        _destinations = Enumerable.Range(0, 1024).Select(i => $"/topic/private-chat/admin{i * 2 % 10_000}/client{i}").ToArray();
        foreach (var d in _destinations) { _exact.Match(d); _wildcard.Match(d); }   // steady state: cached
    }

    [Benchmark(Baseline = true)]
    public int Match_Exact10k() => _exact.Match(_destinations[_next++ & 1023]).Length;

    [Benchmark]
    public int Match_Wildcard10k() => _wildcard.Match(_destinations[_next++ & 1023]).Length;

    [Benchmark]
    public int Match_Wildcard10k_Uncached()
    {
        // What a subscription change costs the next publish: the trie walk itself.
        var router = _wildcard;
        return router.MatchUncachedForBenchmark(_destinations[_next++ & 1023]);
    }

    private sealed class NullSink : IMessageSink
    {
        public bool TryDeliver(Subscription subscription, SharedMessage message) => true;
    }
}

/// <summary>One published MESSAGE fanned out to N sessions: serialise the shared part once, queue it to every session's
/// outbox, and encode each session's frame as its writer loop would (no sockets).</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class FanOutBenchmarks
{
    private BrokerServices _services = null!;
    private StompConnection[] _sessions = null!;
    private readonly ArrayBufferWriter<byte> _output = new(1 << 20);
    private readonly byte[] _body = Encoding.UTF8.GetBytes(new string('x', 120));
    private readonly string[] _headerNames = ["content-type"];
    private KeyValuePair<string, string>[] _headers = null!;

    [Params(1, 100, 10_000)]
    public int Sessions { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = Options.Create(new BrokerOptions { OutboundQueueFrames = 16, OutboundQueueBytes = 1 << 20 });
        var auth = Options.Create(new AuthOptions { SigningKey = "benchmark-signing-key-0123456789abcdef" });
        _services = new BrokerServices(options, new TopicRouter(), new SessionRegistry(), new JwtValidator(auth), new AllowAuthenticatedPolicy(new TopicAcl(Options.Create(new AclOptions()))),
            [], new BrokerMetrics(BenchMeterFactory.Create()), NullLoggerFactory.Instance);
        _sessions = new StompConnection[Sessions];
        for (var i = 0; i < Sessions; i++)
        {
            var socket = WebSocket.CreateFromStream(Stream.Null, new WebSocketCreationOptions { IsServer = true });
            _sessions[i] = new StompConnection(socket, _services, "s" + i, null);
            _services.Router.Add(new Subscription(_sessions[i], "sub-" + i, "/topic/fanout", AckMode.Auto, 1));
        }
        _headers = [new(_headerNames[0], "text/plain")];
    }

    [Benchmark]
    public int Publish_AndEncodeEveryDelivery()
    {
        var message = SharedMessage.Create(_services.Ids.Next(), "/topic/fanout", _headers, new ReadOnlySequence<byte>(_body));
        var delivered = _services.Publish(message);
        _output.ResetWrittenCount();
        foreach (var session in _sessions) session.DrainOutbox(_output);
        return delivered;
    }
}
