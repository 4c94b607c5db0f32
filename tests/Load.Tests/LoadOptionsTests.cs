using WsBroker.Protocol;

namespace WsBroker.Load.Tests;

public class LoadOptionsTests
{
    [Fact]
    public void Parse_EveryOption_IsRead()
    {
        var token = Path.GetTempFileName();
        File.WriteAllText(token, " jwt-from-file \n");
        var o = LoadOptions.Parse(["rate", "--url", "ws://localhost:15674/ws", "--token-file", token, "--prefix", "/topic/x", "--pairs", "7",
            "--rate", "2500", "--duration", "1.5s", "--warmup", "500ms", "--messages", "99", "--size", "64", "--subprotocol", "v11.stomp",
            "--out", "o", "--label", "RabbitMQ", "--no-progress", "--connections", "3", "--subscribers", "4", "--inflight", "5"])!;
        Assert.Equal(("rate", "jwt-from-file", "/topic/x", 7, 2500), (o.Scenario, o.Token, o.Prefix, o.Pairs, o.Rate));
        Assert.Equal((TimeSpan.FromSeconds(1.5), TimeSpan.FromMilliseconds(500), 99L, 64), (o.Duration, o.Warmup, o.Messages, o.Size));
        Assert.Equal(("v11.stomp", "o", "RabbitMQ", false), (o.SubProtocol, o.Out, o.Label, o.Progress));
        Assert.Equal((3, 4, 5), (o.Connections, o.Subscribers, o.InFlight));
    }

    [Fact]
    public void Parse_Defaults_AreBoundedAndLoopback()
    {
        var o = LoadOptions.Parse(["pairs"])!;
        Assert.Equal(new Uri("ws://127.0.0.1:8080/ws"), o.Url);
        Assert.Equal(TimeSpan.FromSeconds(10), o.Duration);
        Assert.Equal(1_000_000, o.Messages);
        Assert.Equal((StompHeartBeat.None, 1, 1, 32, (int?)null), (o.HeartBeat, o.SourceAddresses, o.Processes, o.ConnectConcurrency, o.ChildOffset));
    }

    [Fact]
    public void Parse_ConnectionOptions_AreRead()
    {
        var o = LoadOptions.Parse(["idle", "--url", "ws://localhost:8080/ws", "--connections", "19000", "--heart-beat", "10000,5000",
            "--source-addresses", "64", "--processes", "16", "--connect-concurrency", "1024"])!;
        Assert.Equal((new StompHeartBeat(10000, 5000), 64, 16, 1024), (o.HeartBeat, o.SourceAddresses, o.Processes, o.ConnectConcurrency));
        Assert.Equal(new StompHeartBeat(0, 100), LoadOptions.Parse(["fanout", "--heart-beat", "0,100", "--source-addresses", "2"])!.HeartBeat);
        Assert.Equal(5, LoadOptions.Parse(["idle", "--child", "5"])!.ChildOffset);
    }

    [Fact]
    public void Usage_NamesEveryOption_ButTheHiddenChild()
    {
        foreach (var option in new[] { "--heart-beat <cx>,<cy>", "--source-addresses <n>", "--processes <n>", "--connect-concurrency <n>" })
            Assert.Contains(option, LoadOptions.Usage, StringComparison.Ordinal);
        Assert.DoesNotContain("--child", LoadOptions.Usage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("--help")]
    [InlineData("pairs -h")]
    public void Parse_Help_ReturnsNull(string line) => Assert.Null(LoadOptions.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)));

    [Theory]
    [InlineData("unknown scenario 'storm'", "storm")]
    [InlineData("--url must be a ws:// or wss:// URL, not 'http://x'", "pairs", "--url", "http://x")]
    [InlineData("is not a loopback address", "pairs", "--url", "ws://example.com/ws")]
    [InlineData("--pairs must be a whole number from 1 to 10000, not '0'", "pairs", "--pairs", "0")]
    [InlineData("--size must be a whole number from 16", "pairs", "--size", "8")]
    [InlineData("--duration must be a time", "pairs", "--duration", "forever")]
    [InlineData("--rate needs a value", "rate", "--rate")]
    [InlineData("unknown option '--turbo'", "pairs", "--turbo")]
    [InlineData("--login and --passcode go together", "pairs", "--login", "guest")]
    [InlineData("--prefix must start with '/'", "pairs", "--prefix", "topic")]
    [InlineData("--token-file: file not found: /nope", "pairs", "--token-file", "/nope")]
    [InlineData("--pid 999999999: no such process", "idle", "--pid", "999999999")]
    [InlineData("--gc-url http://example.com/debug/gc is not a loopback address", "idle", "--gc-url", "http://example.com/debug/gc")]
    [InlineData("chat connects as the demo customers", "chat", "--token", "jwt")]
    [InlineData("--url ws://example.com/ws is not a loopback address", "pairs", "--url", A, "--url", "ws://example.com/ws")]
    [InlineData("--cross needs at least two --url", "pairs", "--cross")]
    [InlineData("--cross needs at least two --url", "rate", "--cross", "--url", A)]
    [InlineData("--cross is for pairs, rate and fanout, not idle", "idle", "--cross", "--url", A, "--url", B)]
    [InlineData("--cross is for pairs, rate and fanout, not failover", "failover", "--cross", "--url", A, "--url", B, "--dev-tokens")]
    [InlineData("--kill-pid and --kill-after are for the failover scenario", "pairs", "--kill-after", "1s")]
    [InlineData("--kill-pid and --kill-after are for the failover scenario", "chat", "--dev-tokens", "--kill-pid", "1")]
    [InlineData("failover needs at least two --url", "failover", "--dev-tokens", "--kill-pid", "1", "--kill-after", "1s")]
    [InlineData("failover connects as the demo users admin1 and client1..client3", "failover", "--url", A, "--url", B)]
    [InlineData("failover needs --kill-pid and --kill-after", "failover", "--url", A, "--url", B, "--dev-tokens")]
    [InlineData("failover needs --kill-pid and --kill-after", "failover", "--url", A, "--url", B, "--dev-tokens", "--kill-after", "1s")]
    [InlineData("--kill-after must be a time", "failover", "--kill-after", "soon")]
    [InlineData("--kill-after 12s must be within the run (--warmup + --duration = 12s)", "failover", "--url", A, "--url", B, "--dev-tokens",
        "--kill-pid", "1", "--kill-after", "12s")]
    [InlineData("--kill-pid 999999999: no such process", "failover", "--url", A, "--url", B, "--dev-tokens", "--kill-pid", "999999999", "--kill-after", "1s")]
    [InlineData("--heart-beat must be <cx>,<cy> in ms, each 0 or from 100 to 3600000, not '10000'", "idle", "--heart-beat", "10000")]
    [InlineData("--heart-beat must be <cx>,<cy>", "idle", "--heart-beat", "50,0")]
    [InlineData("--heart-beat must be <cx>,<cy>", "idle", "--heart-beat", "0,3600001")]
    [InlineData("--heart-beat must be <cx>,<cy>", "idle", "--heart-beat", "a,b")]
    [InlineData("--heart-beat needs a value", "idle", "--heart-beat")]
    [InlineData("--source-addresses must be a whole number from 1 to 64, not '0'", "idle", "--source-addresses", "0")]
    [InlineData("--source-addresses must be a whole number from 1 to 64, not '65'", "idle", "--source-addresses", "65")]
    [InlineData("--source-addresses needs IPv4 loopback URLs (127.x.x.x or localhost), not ws://[::1]:8080/ws", "idle", "--source-addresses", "2", "--url", "ws://[::1]:8080/ws")]
    [InlineData("--source-addresses needs IPv4 loopback URLs", "idle", "--source-addresses", "2", "--url", "ws://10.0.0.1/ws", "--allow-remote")]
    [InlineData("--processes must be a whole number from 1 to 16, not '17'", "idle", "--processes", "17")]
    [InlineData("--processes must be a whole number from 1 to 16, not '0'", "idle", "--processes", "0")]
    [InlineData("--processes is for idle, not fanout", "fanout", "--processes", "2")]
    [InlineData("--processes 3 is more than --connections 2", "idle", "--processes", "3", "--connections", "2")]
    [InlineData("--connect-concurrency must be a whole number from 1 to 1024, not '1025'", "idle", "--connect-concurrency", "1025")]
    [InlineData("--connect-concurrency must be a whole number from 1 to 1024, not '0'", "pairs", "--connect-concurrency", "0")]
    [InlineData("--child is for the children of idle --processes", "pairs", "--child", "0")]
    [InlineData("--child is for the children of idle --processes", "idle", "--processes", "2", "--child", "0")]
    public void Parse_BadOptions_NameTheOption(string message, params string[] args) =>
        Assert.Contains(message, Assert.Throws<LoadUsageException>(() => LoadOptions.Parse(args)).Message);

    private const string A = "ws://127.0.0.1:8101/ws";
    private const string B = "ws://127.0.0.1:8102/ws";

    [Fact]
    public void Parse_SeveralUrls_KeepTheirOrder_TheFirstNamesTheRun()
    {
        var o = LoadOptions.Parse(["pairs", "--url", A, "--url", B, "--url", "ws://localhost:8103/ws", "--cross"])!;
        Assert.Equal([A, B, "ws://localhost:8103/ws"], o.Urls.Select(u => u.ToString()));
        Assert.Equal(new Uri(A), o.Url);
        Assert.True(o.Cross);
        Assert.Equal([A, B, "ws://localhost:8103/ws", A], Enumerable.Range(0, 4).Select(i => o.UrlFor(i).ToString()));
    }

    [Fact]
    public void Parse_TooManyUrls_IsRefused()
    {
        var args = new List<string> { "pairs" };
        for (var i = 0; i < 17; i++) args.AddRange(["--url", $"ws://127.0.0.1:{8100 + i}/ws"]);
        Assert.Contains("--url may be given at most 16 times", Assert.Throws<LoadUsageException>(() => LoadOptions.Parse([.. args])).Message);
    }

    [Fact]
    public void Parse_Failover_ReadsItsOptions_AndChecksThePidIsABrokerNode()
    {
        // The test host is a dotnet process, but not WsBroker.Broker.dll: the tool refuses to kill it.
        var pid = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var ex = Assert.Throws<LoadUsageException>(() => LoadOptions.Parse(["failover", "--url", A, "--url", B, "--dev-tokens", "--kill-pid", pid, "--kill-after", "3s"]));
        Assert.StartsWith($"--kill-pid {pid}: not a WsBroker node (dotnet WsBroker.Broker.dll): ", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, "dotnet", "/work/src/Broker/bin/Release/net10.0/WsBroker.Broker.dll", "--urls", "http://127.0.0.1:8101")]
    [InlineData(true, "/usr/bin/dotnet", "exec", "WsBroker.Broker.dll")]
    [InlineData(false, "dotnet", "testhost.dll")]
    [InlineData(false, "/usr/bin/python3", "WsBroker.Broker.dll")]
    [InlineData(false, "dotnet", "WsBroker.Broker.dll.bak")]
    [InlineData(false, "dotnet")]
    public void IsBrokerNode_NeedsDotnetRunningTheBrokerDll(bool expected, params string[] argv) =>
        Assert.Equal(expected, LoadOptions.IsBrokerNode(argv));

    [Fact]
    public void Parse_RemoteUrl_IsAllowedOnlyWhenAsked() =>
        Assert.Equal("example.com", LoadOptions.Parse(["pairs", "--url", "ws://example.com/ws", "--allow-remote"])!.Url.Host);

    [Fact]
    public void Timestamps_RoundTripThroughTheBody()
    {
        var body = new byte[32];
        LoadConnection.WriteTimestamp(0x0123456789ABCDEF, body);
        Assert.Equal(0x0123456789ABCDEF, LoadConnection.ReadTimestamp(new System.Buffers.ReadOnlySequence<byte>(body)));
        Assert.Equal(-1, LoadConnection.ReadTimestamp(new System.Buffers.ReadOnlySequence<byte>("short"u8.ToArray())));
    }

    [Fact]
    public void Report_WritesMarkdownJsonAndPlots()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"load-report-{Guid.NewGuid():N}");
        var result = new ScenarioResult("pairs", "WsBroker", "ws://127.0.0.1/ws", 2, 1, 10, 10, 10, 1, 2, 3, 4, 5, 1.5, 0, 0,
            new Dictionary<string, double> { ["k"] = 1 }, [5, 5]);
        var files = Report.Write(folder, result);
        Report.Write(folder, result with { Label = "RabbitMQ" });
        var markdown = File.ReadAllLines(Path.Combine(folder, "report.md"));
        Assert.Equal(4, markdown.Length);                                   // header, separator, two rows
        Assert.StartsWith("| WsBroker | pairs | 2 |", markdown[2]);
        Assert.Contains(files, f => f.EndsWith("wsbroker-pairs-latency.png", StringComparison.Ordinal));
        Assert.True(new FileInfo(Path.Combine(folder, "wsbroker-pairs-throughput.png")).Length > 1000);
        Assert.Contains("\"per_second\":10", Report.JsonLine(result));
        Assert.Contains("\"urls\":[\"ws://127.0.0.1/ws\"]", Report.JsonLine(result));
        Assert.Contains("\"urls\":[\"ws://a/ws\",\"ws://b/ws\"],\"cross\":true", Report.JsonLine(result with { Urls = ["ws://a/ws", "ws://b/ws"], Cross = true }));
    }
}
