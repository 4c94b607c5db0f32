using System.Diagnostics.Metrics;
using WsBroker.Broker.Diagnostics;

namespace WsBroker.Broker.Cluster;

/// <summary>The backplane's instruments, on the broker's meter: messages out, in and dropped, and AMQP publishes (their
/// ratio to messages out is the batching).</summary>
public sealed class BackplaneMetrics
{
    private readonly Counter<long> _messages;
    private readonly Counter<long> _publishes;
    private readonly Counter<long> _requestsHandled;
    private readonly KeyValuePair<string, object?> _out = new("direction", "out");
    private readonly KeyValuePair<string, object?> _in = new("direction", "in");
    private readonly KeyValuePair<string, object?> _dropped = new("direction", "dropped");

    public BackplaneMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(BrokerMetrics.MeterName);
        _messages = meter.CreateCounter<long>("wsbroker_backplane_messages", "{message}",
            "Messages sent to the other nodes (out), received from them (in), or not sent: queue full or RabbitMQ unreachable (dropped).");
        _publishes = meter.CreateCounter<long>("wsbroker_backplane_publishes", "{publish}", "AMQP publishes of message batches.");
        _requestsHandled = meter.CreateCounter<long>("wsbroker_cluster_requests_handled", "{request}",
            "Requests this node handled as the owner of their shard (stored SENDs of the conversations it owns).");
    }

    public void Published(int messages)
    {
        _publishes.Add(1);
        _messages.Add(messages, _out);
    }

    public void Received(int messages) => _messages.Add(messages, _in);

    public void RequestHandled() => _requestsHandled.Add(1);

    public void Dropped(int messages) => _messages.Add(messages, _dropped);
}
