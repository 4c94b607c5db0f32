using System.Diagnostics;
using System.Diagnostics.Metrics;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Diagnostics;

/// <summary>
/// The broker's instruments on the <c>WsBroker</c> <see cref="Meter"/> (seen by <c>dotnet-counters</c>, OpenTelemetry and
/// <c>/metrics</c>). Counters are counted here; gauges are observed from the part that owns the number, which registers
/// them with <see cref="ObserveGauge(string, Func{long}, string?, string)"/>.
/// </summary>
/// <remarks>
/// Hot-path calls cost one <see cref="Counter{T}.Add(T, KeyValuePair{string, object?})"/> each and allocate nothing: a
/// tag is a <see cref="KeyValuePair{TKey, TValue}"/> built (and its value boxed) once, here, per command, reason or kind.
/// Instrument names are the Prometheus names <c>/metrics</c> has always served.
/// </remarks>
public sealed class BrokerMetrics
{
    /// <summary>The meter's name: <c>dotnet-counters monitor -n WsBroker.Broker --counters WsBroker</c>.</summary>
    public const string MeterName = "WsBroker";

    /// <summary>Upper bounds (seconds) of the commit-latency histogram buckets.</summary>
    public static readonly IReadOnlyList<double> CommitBucketBoundaries = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    private readonly Meter _meter;
    private readonly Counter<long> _connectionsOpened;
    private readonly Counter<long> _framesIn;
    private readonly Counter<long> _framesOut;
    private readonly Counter<long> _bytesIn;
    private readonly Counter<long> _bytesOut;
    private readonly Counter<long> _deliveries;
    private readonly Counter<long> _slowConsumers;
    private readonly Counter<long> _flowControlPauses;
    private readonly Counter<double> _flowControlPausedSeconds;
    private readonly Counter<long> _disconnects;
    private readonly Counter<long> _errors;
    private readonly Counter<long> _sessionsExpired;
    private readonly Counter<long> _tokenRefreshes;
    private readonly Histogram<double> _commitSeconds;
    private readonly Counter<long> _committed;
    private readonly KeyValuePair<string, object?>[] _commandTags;
    private readonly KeyValuePair<string, object?>[] _reasonTags;
    private readonly KeyValuePair<string, object?> _protocolError = new("kind", "protocol");
    private readonly KeyValuePair<string, object?> _authenticationFailure = new("kind", "authentication");
    private readonly KeyValuePair<string, object?> _rejection = new("kind", "rejection");
    private readonly KeyValuePair<string, object?> _refreshAccepted = new("result", "accepted");
    private readonly KeyValuePair<string, object?> _refreshRefused = new("result", "refused");

    public BrokerMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(MeterName);
        _connectionsOpened = _meter.CreateCounter<long>("wsbroker_connections_opened", "{connection}", "Connections accepted since start.");
        _framesIn = _meter.CreateCounter<long>("wsbroker_frames_in", "{frame}", "Frames received, by command.");
        _framesOut = _meter.CreateCounter<long>("wsbroker_frames_out", "{frame}",
            "Frames sent, by command (a raw topic URL's JSON deliveries, receipts and errors as MESSAGE, RECEIPT, ERROR).");
        // "{byte}", not UCUM "By": the Prometheus exporter appends "_bytes" for "By", which would rename wsbroker_bytes_in_total.
        _bytesIn = _meter.CreateCounter<long>("wsbroker_bytes_in", "{byte}", "WebSocket payload bytes received.");
        _bytesOut = _meter.CreateCounter<long>("wsbroker_bytes_out", "{byte}", "WebSocket payload bytes sent.");
        _deliveries = _meter.CreateCounter<long>("wsbroker_deliveries", "{message}", "Messages queued to subscribers.");
        _slowConsumers = _meter.CreateCounter<long>("wsbroker_slow_consumer_disconnects", "{connection}",
            "Connections dropped because they did not read fast enough.");
        _flowControlPauses = _meter.CreateCounter<long>("wsbroker_flow_control_pauses", "{pause}",
            "Times a publisher's read loop waited for the subscribers it fed to drain below their low-water mark (credit flow).");
        _flowControlPausedSeconds = _meter.CreateCounter<double>("wsbroker_flow_control_paused", "s",
            "Time publishers' read loops spent waiting for credit, summed over publishers, counted as each wait ends.");
        _disconnects = _meter.CreateCounter<long>("wsbroker_disconnects", "{connection}", "Ended connections by reason.");
        _errors = _meter.CreateCounter<long>("wsbroker_errors", "{error}", "Errors by kind.");
        _sessionsExpired = _meter.CreateCounter<long>("wsbroker_sessions_expired", "{connection}",
            "Sessions closed because their token expired without a refresh.");
        _tokenRefreshes = _meter.CreateCounter<long>("wsbroker_token_refreshes", "{refresh}",
            "In-band token refreshes (SEND /session/token), by result: accepted or refused (the session closes).");
        _commitSeconds = _meter.CreateHistogram("wsbroker_persistence_commit", "s", "Duration of group commits.", tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = CommitBucketBoundaries });
        _committed = _meter.CreateCounter<long>("wsbroker_persistence_committed_messages", "{message}", "Chat messages stored by group commits.");
        // The process's own two, as /metrics always served them (the runtime's full set is the System.Runtime meter).
        _meter.CreateObservableGauge("process_resident_memory_bytes", () => Environment.WorkingSet, "By", "Resident memory of the broker process.");
        _meter.CreateObservableGauge("dotnet_gc_heap_bytes", () => GC.GetGCMemoryInfo().HeapSizeBytes, "By", "Managed heap size at the last garbage collection.");
        var commands = Enum.GetValues<StompCommand>();
        _commandTags = new KeyValuePair<string, object?>[commands.Length];
        foreach (var command in commands) _commandTags[(int)command] = new("command", command.ToWireString());
        var reasons = Enum.GetValues<DisconnectReason>();
        _reasonTags = new KeyValuePair<string, object?>[reasons.Length];
        foreach (var reason in reasons) _reasonTags[(int)reason] = new("reason", reason.ToString());
    }

    /// <summary>The meter, for a part that creates an instrument of another kind on it.</summary>
    public Meter Meter => _meter;

    /// <summary>
    /// Registers a gauge read when a listener collects (a scrape of <c>/metrics</c>, a <c>dotnet-counters</c> tick). The
    /// part that owns the number registers it, once; <paramref name="value"/> must be cheap and thread-safe.
    /// </summary>
    public ObservableGauge<long> ObserveGauge(string name, Func<long> value, string? unit, string description)
    {
        ArgumentNullException.ThrowIfNull(value);
        return _meter.CreateObservableGauge(name, value, unit, description);
    }

    /// <summary>A gauge with one value per tag set (e.g. sessions by protocol): one measurement for each.</summary>
    public ObservableGauge<long> ObserveGauge(string name, Func<IEnumerable<Measurement<long>>> values, string? unit, string description)
    {
        ArgumentNullException.ThrowIfNull(values);
        return _meter.CreateObservableGauge(name, values, unit, description);
    }

    public void ConnectionOpened() => _connectionsOpened.Add(1);

    /// <summary>One frame received from a client (a raw topic URL message counts as SEND).</summary>
    public void FrameReceived(StompCommand command) => _framesIn.Add(1, _commandTags[(int)command]);

    /// <summary>WebSocket payload bytes received.</summary>
    public void BytesReceived(int bytes) => _bytesIn.Add(bytes);

    /// <summary>One flush to the socket: <paramref name="frames"/> frames of <paramref name="bytes"/> bytes, of which
    /// <paramref name="messages"/> were MESSAGE frames (the others are counted one by one by <see cref="FrameSent"/>).</summary>
    public void FramesSent(int frames, int bytes, int messages)
    {
        Debug.Assert(messages <= frames, "MESSAGE frames are part of the flush");
        _bytesOut.Add(bytes);
        if (messages > 0) _framesOut.Add(messages, _commandTags[(int)StompCommand.Message]);
    }

    /// <summary>A frame other than MESSAGE was sent (MESSAGE frames, by far the most, are counted per flush in
    /// <see cref="FramesSent"/>).</summary>
    public void FrameSent(StompCommand command) => _framesOut.Add(1, _commandTags[(int)command]);

    /// <summary>Messages queued to subscribers by one publish.</summary>
    public void Delivered(int count)
    {
        if (count > 0) _deliveries.Add(count);
    }

    public void SlowConsumer() => _slowConsumers.Add(1);

    /// <summary>A publisher's read loop waited <paramref name="waited"/> for credit (its subscribers were above their
    /// high-water mark).</summary>
    public void FlowControlPaused(TimeSpan waited)
    {
        _flowControlPauses.Add(1);
        _flowControlPausedSeconds.Add(waited.TotalSeconds);
    }

    public void ProtocolError() => _errors.Add(1, _protocolError);

    public void AuthenticationFailure() => _errors.Add(1, _authenticationFailure);

    public void Rejection() => _errors.Add(1, _rejection);

    /// <summary>A session's token expired without a refresh.</summary>
    public void SessionExpired() => _sessionsExpired.Add(1);

    /// <summary>A SEND to <c>/session/token</c> was <paramref name="accepted"/> or refused.</summary>
    public void TokenRefreshed(bool accepted) => _tokenRefreshes.Add(1, accepted ? _refreshAccepted : _refreshRefused);

    public void Disconnected(DisconnectReason reason) => _disconnects.Add(1, _reasonTags[(int)reason]);

    /// <summary>One group commit of <paramref name="messages"/> messages that took <paramref name="elapsed"/>.</summary>
    public void CommitObserved(int messages, TimeSpan elapsed)
    {
        _commitSeconds.Record(elapsed.TotalSeconds);
        _committed.Add(messages);
    }
}
