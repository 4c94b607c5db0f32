using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Access;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Bench;

/// <summary>Matching a destination against 10,000 subscriptions: all exact, or all wildcard patterns.</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class RouterBenchmarks
{
    private TopicRouter _exact = null!;
    private TopicRouter _wildcard = null!;
    private string[] _destinations = null!;
    private Subscription[] _oneTopic = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var sink = new NullSink();
        _exact = new TopicRouter();
        _wildcard = new TopicRouter();
        for (var i = 0; i < 10_000; i++)
        {
            _exact.Add(new Subscription(sink, "s", Destination.Of($"/topic/private-chat/admin{i % 100}/client{i}"), AckMode.Auto, i));
            // Half '*' in the middle, half '#' at the end: the shapes the chat and general topics use.
            _wildcard.Add(new Subscription(sink, "s", Destination.Of(i % 2 == 0 ? $"/topic/private-chat/admin{i}/*" : $"/topic/news/region{i}/#"), AckMode.Auto, i));
        }
        _destinations = Enumerable.Range(0, 1024).Select(i => $"/topic/private-chat/admin{i * 2 % 10_000}/client{i}").ToArray();
        foreach (var d in _destinations) { _exact.Match(d); _wildcard.Match(d); }   // steady state: cached
        _oneTopic = [.. Enumerable.Range(0, 10_000).Select(i => new Subscription(sink, "s" + i, Destination.Of("/topic/broadcast"), AckMode.Auto, i))];
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

    /// <summary>Every customer subscribes to one broadcast topic, then leaves: 10,000 adds and 10,000 removes on one slot.</summary>
    [Benchmark(OperationsPerInvoke = 10_000)]
    public int SubscribeAndLeave_10kOnOneTopic()
    {
        var router = new TopicRouter();
        var subscriptions = _oneTopic;
        foreach (var s in subscriptions) router.Add(s);
        foreach (var s in subscriptions) router.Remove(s);
        return router.Count;
    }

    private sealed class NullSink : IMessageSink
    {
        public DeliveryOutcome TryDeliver(Subscription subscription, SharedMessage message, bool replay = false) => DeliveryOutcome.Queued;

        public Task WhenDrained() => Task.CompletedTask;
        public bool IsStalled => false;
    }
}

/// <summary>Sessions over in-memory transports, with the services a broker gives them (no sockets, no host).</summary>
internal static class BenchSessions
{
    public static BrokerServices Services()
    {
        var options = Options.Create(new BrokerOptions { OutboundQueueFrames = 64, OutboundQueueBytes = 1 << 20 });
        var auth = Options.Create(new AuthOptions { SigningKey = "benchmark-signing-key-0123456789abcdef" });
        var router = new TopicRouter();
        var metrics = new BrokerMetrics(BenchMeterFactory.Create());
        return new BrokerServices(options, router, new InProcessBackplane(new LocalDelivery(router, metrics, options), router), new SessionRegistry(),
            new JwtValidator(auth), new AclPolicy(new TopicAcl(Options.Create(new AclOptions()))), [], metrics, new MessageIdGenerator(0),
            NullLoggerFactory.Instance);
    }

    /// <summary>A STOMP session that has been sent CONNECT (and answered it).</summary>
    public static StompSession Connected(BrokerServices services, string id)
    {
        var session = new StompSession(new InMemoryTransport { Discard = true }, services, id, null);
        var token = new JwtIssuer(Options.Create(new AuthOptions { SigningKey = "benchmark-signing-key-0123456789abcdef" }))
            .Issue(id, "client", id, TimeSpan.FromHours(1));
        Feed(session, $"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0");
        session.DrainOutbox(new ArrayBufferWriter<byte>());
        return session;
    }

    public static void Feed(StompSession session, string wire) => Feed(session, Encoding.UTF8.GetBytes(wire));

    public static void Feed(StompSession session, byte[] wire)
    {
        var received = session.ReceiveAsync(new ReadOnlySequence<byte>(wire));
        if (!received.IsCompleted) received.AsTask().GetAwaiter().GetResult();
    }
}

/// <summary>One published MESSAGE fanned out to N sessions: serialise the shared part once, queue it to every session's
/// outbox, and encode each session's frame as its writer loop would (no sockets).</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class FanOutBenchmarks
{
    private BrokerServices _services = null!;
    private StompSession[] _sessions = null!;
    private readonly ArrayBufferWriter<byte> _output = new(1 << 20);
    private readonly byte[] _body = Encoding.UTF8.GetBytes(new string('x', 120));
    private KeyValuePair<string, string>[] _headers = null!;

    [Params(1, 100, 10_000)]
    public int Sessions { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _services = BenchSessions.Services();
        _sessions = new StompSession[Sessions];
        var destination = Destination.Of("/topic/fanout");
        for (var i = 0; i < Sessions; i++)
        {
            _sessions[i] = new StompSession(new InMemoryTransport { Discard = true }, _services, "s" + i, null);
            _services.Router.Add(new Subscription(_sessions[i], "sub-" + i, destination, AckMode.Auto, 1));
        }
        _headers = [new("content-type", "text/plain")];
    }

    [Benchmark]
    public int Publish_AndEncodeEveryDelivery()
    {
        var message = SharedMessage.Create(_services.Ids.Next(), "/topic/fanout", _headers, _body);
        _services.Backplane.Publish(message);
        _output.ResetWrittenCount();
        var delivered = 0;
        foreach (var session in _sessions) delivered += session.DrainOutbox(_output);
        return delivered;
    }
}

/// <summary>The replies a session writes for itself, each from the frame in the read buffer to the bytes of its answer:
/// the target is 0 B allocated per frame in steady state (DESIGN.md §6).</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class SessionReplyBenchmarks
{
    private readonly ArrayBufferWriter<byte> _output = new(1 << 16);
    private StompSession _publisher = null!;
    private StompSession _acker = null!;
    private StompSession _rejected = null!;
    private Subscription _ackSubscription = null!;
    private SharedMessage _message = null!;
    private byte[] _send = null!;
    private byte[] _ack = null!;

    [GlobalSetup]
    public void Setup()
    {
        var services = BenchSessions.Services();
        _publisher = BenchSessions.Connected(services, "publisher");
        _send = Encoding.UTF8.GetBytes("SEND\ndestination:/topic/bench/nobody\nreceipt:r-1\ncontent-type:text/plain\n\nhello\0");
        _acker = BenchSessions.Connected(services, "acker");
        BenchSessions.Feed(_acker, "SUBSCRIBE\nid:s1\ndestination:/topic/bench/acked\nack:client-individual\n\n\0");
        _ackSubscription = services.Router.Match("/topic/bench/acked")[0];
        _message = SharedMessage.Create(services.Ids.Next(), "/topic/bench/acked", [], Encoding.UTF8.GetBytes("hello"));
        _ack = Encoding.UTF8.GetBytes($"ACK\nid:{_message.Id}-1\nreceipt:a-1\n\n\0");
        _rejected = BenchSessions.Connected(services, "rejected");
        BenchSessions.Feed(_rejected, "SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\n\n\0");
        for (var i = 0; i < 1000; i++) { SendToRECEIPT(); Ack(); UserError(); }    // warm pools, caches and the id list
    }

    /// <summary>A SEND with a receipt to a topic nobody subscribes to: parse, route, answer.</summary>
    [Benchmark]
    public int SendToRECEIPT()
    {
        BenchSessions.Feed(_publisher, _send);
        _output.ResetWrittenCount();
        return _publisher.DrainOutbox(_output);
    }

    /// <summary>A delivery under ack:client-individual, then its ACK with a receipt.</summary>
    [Benchmark]
    public int Ack()
    {
        _acker.TryDeliver(_ackSubscription, _message);
        BenchSessions.Feed(_acker, _ack);
        _output.ResetWrittenCount();
        return _acker.DrainOutbox(_output);
    }

    /// <summary>A business rejection on /user/queue/errors with its receipt-id.</summary>
    [Benchmark]
    public int UserError()
    {
        _rejected.SendUserError("could-not-send-message: rate limit", "r-9");
        _output.ResetWrittenCount();
        return _rejected.DrainOutbox(_output);
    }
}
