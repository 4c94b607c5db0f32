using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Prometheus;
using WsBroker.Broker.Diagnostics;
using WsBroker.Protocol;

namespace WsBroker.Bench;

/// <summary>What one metric call costs the hot path, with no listener, with a bare <see cref="MeterListener"/>, and with
/// each candidate <c>/metrics</c> exporter's listener attached (docs/performance.md "Metrics exporter").</summary>
[Config(typeof(ProtocolBenchmarkConfig))]
[MemoryDiagnoser]
public class MetricsBenchmarks
{
    public enum ListenerKind { None, MeterListener, OpenTelemetry, PrometheusNet }

    private ServiceProvider _provider = null!;
    private BrokerMetrics _metrics = null!;
    private Counter<long> _plain = null!;
    private IDisposable? _listener;
    private readonly KeyValuePair<string, object?> _tag = new("command", "SEND");

    // PrometheusNet last: its adapter is the one whose global state could outlive its case (Setup checks None is unheard).
    [Params(ListenerKind.None, ListenerKind.MeterListener, ListenerKind.OpenTelemetry, ListenerKind.PrometheusNet)]
    public ListenerKind Listener { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _provider = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _metrics = new BrokerMetrics(_provider.GetRequiredService<IMeterFactory>());
        _plain = _metrics.Meter.CreateCounter<long>("bench_plain");
        _listener = Listener switch
        {
            ListenerKind.MeterListener => StartMeterListener(),
            ListenerKind.OpenTelemetry => Sdk.CreateMeterProviderBuilder().AddMeter(BrokerMetrics.MeterName).AddPrometheusExporter().Build(),
            ListenerKind.PrometheusNet => MeterAdapter.StartListening(new MeterAdapterOptions
            {
                Registry = Prometheus.Metrics.NewCustomRegistry(),
                InstrumentFilterPredicate = i => i.Meter.Name == BrokerMetrics.MeterName,
            }),
            _ => null,
        };
        if (_plain.Enabled != (Listener != ListenerKind.None))
            throw new InvalidOperationException($"{Listener}: the counter is {(_plain.Enabled ? "" : "not ")}listened to");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _listener?.Dispose();
        _provider.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void CounterAdd_NoTag() => _plain.Add(1);

    [Benchmark]
    public void CounterAdd_CachedTag() => _plain.Add(1, _tag);

    [Benchmark]
    public void FrameReceived() => _metrics.FrameReceived(StompCommand.Send);

    [Benchmark]
    public void BytesReceived() => _metrics.BytesReceived(200);

    [Benchmark]
    public void FramesSent() => _metrics.FramesSent(16, 4096, 16);

    [Benchmark]
    public void Delivered() => _metrics.Delivered(16);

    // A listener that sums, as the simplest aggregator would.
    private static MeterListener StartMeterListener()
    {
        long sum = 0;
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == BrokerMetrics.MeterName) l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref sum, value));
        listener.Start();
        return listener;
    }
}
