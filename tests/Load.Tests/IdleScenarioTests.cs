using System.Globalization;
using Xunit.Abstractions;

namespace WsBroker.Load.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IdleMeasurementCollection
{
    /// <summary>The broker runs in the test process, so its live heap is the test process's: nothing else may run meanwhile.</summary>
    public const string Name = "idle measurement";
}

/// <summary>idle from child processes of the tool, over several source addresses, with heart-beats, against an in-process
/// WsBroker (the test process is the broker's --pid). Not a speed test: it checks that every connection holds and that the
/// report's fields are there and sane.</summary>
[Collection(IdleMeasurementCollection.Name)]
public sealed class IdleScenarioTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestBroker _broker = null!;

    public async Task InitializeAsync() => _broker = await TestBroker.StartAsync();

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    [Fact]
    public async Task Idle_ChildProcessesOverSourceAddressesWithHeartBeats_HoldEveryConnection()
    {
        var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var options = LoadOptions.Parse(["idle", "--url", _broker.Ws.ToString(), "--dev-tokens", "--no-progress", "--connections", "40",
            "--processes", "2", "--source-addresses", "2", "--heart-beat", "1000,1000", "--duration", "3s", "--pid", pid,
            "--gc-url", _broker.GcUrl.ToString()])!;
        var r = await Scenarios.RunAsync(options, new RunStats(), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(120));
        output.WriteLine(Report.JsonLine(r));
        var x = r.Extra;

        Assert.Equal((40, 0L, 0L), (r.Connections, r.Lost, r.Errors));
        Assert.Equal((40, 40, 40, 0), ((int)x["held"], (int)x["requested"], (int)x["connected"], (int)x["connect_failed"]));
        Assert.Equal((0, 0), ((int)x["closed_by_broker"], (int)x["processes_failed"]));
        Assert.Equal((2, 2), ((int)x["processes"], (int)x["source_addresses"]));
        Assert.True(x["connect_seconds"] > 0 && x["connect_per_second"] > 0, "connect phase");
        // connect_seconds is rounded to the millisecond: over a phase of about 0.1 s that moves the rate by up to 1%.
        Assert.Equal(40 / x["connect_seconds"], x["connect_per_second"], 0.01 * x["connect_per_second"] + 0.5);
        // STOMP 1.2: max(1000 asked, 1000 the broker wants). In a 3 s hold every connection beats at least once each way.
        Assert.Equal(1000, x["heart_beat_send_ms"]);
        Assert.True(x["heart_beats_sent"] >= 40, $"sent {x["heart_beats_sent"]}");
        Assert.True(x["heart_beats_received"] >= 40, $"received {x["heart_beats_received"]}");
        Assert.True(x["heap_bytes_per_connection"] > 0, $"heap {x["heap_bytes_per_connection"]}");
        Assert.True(x["rss_before_mib"] > 0 && x["rss_up_mib"] > 0 && x["rss_after_mib"] > 0);
        Assert.True(double.IsFinite(x["bytes_per_connection"]));
        Assert.InRange(x["broker_cpu_cores"], 0, Environment.ProcessorCount);
        Assert.Equal(x["broker_cpu_cores"] * 100, x["broker_cpu_pct_of_core"], 0.05);
    }

    [Fact]
    public void ChildArgs_KeepTheRunsOptions_DropWhatOnlyTheParentDoes_AddTheShare()
    {
        var options = LoadOptions.Parse(["idle", "--url", "ws://127.0.0.1:8101/ws", "--connections", "100", "--processes", "3", "--pid", "1",
            "--gc-url", "http://127.0.0.1:8101/debug/gc", "--out", "o", "--label", "L", "--no-progress", "--heart-beat", "10000,10000",
            "--source-addresses", "4", "--dev-tokens", "--duration", "60s"])!;
        Assert.Equal(["idle", "--url", "ws://127.0.0.1:8101/ws", "--heart-beat", "10000,10000", "--source-addresses", "4", "--dev-tokens",
            "--duration", "60s", "--connections", "33", "--child", "67", "--no-progress"], ChildProcess.ChildArgs(options, 67, 33));
        var child = LoadOptions.Parse([.. ChildProcess.ChildArgs(options, 67, 33)])!;
        Assert.Equal((33, 67, 1, 4), (child.Connections, child.ChildOffset, child.Processes, child.SourceAddresses));
    }

    [Theory]
    [InlineData("1234 (dotnet) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 30 0 100 0 0", 325)]
    [InlineData("99 (a b) (c)) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 10)]
    public void ParseCpuTicks_AddsUserAndSystem_AfterACommandNameWithSpacesAndParentheses(string stat, long ticks) =>
        Assert.Equal(ticks, ProcessProbe.ParseCpuTicks(stat));

    [Fact]
    public void CpuSeconds_OfThisProcess_Grows()
    {
        var before = ProcessProbe.CpuSeconds(Environment.ProcessId);
        var reference = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        while ((System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - reference).TotalMilliseconds < 50) { }   // 5 ticks
        Assert.True(ProcessProbe.CpuSeconds(Environment.ProcessId) > before);
    }
}
