using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MySqlConnector;

namespace WsBroker.Load.Tests;

/// <summary>--cross and failover against a real cluster: WsBroker nodes as separate processes (failover kills one -9), one
/// MariaDB database, RabbitMQ as the backplane. Brief runs: they complete, cross nodes, and lose nothing. Not a speed test.</summary>
[Trait("Category", "Integration")]
public sealed class ClusterSmokeTests(ClusterSmokeTests.Cluster cluster) : IClassFixture<ClusterSmokeTests.Cluster>
{
    private async Task<ScenarioResult> RunAsync(string[] urls, params string[] args)
    {
        var options = LoadOptions.Parse([.. args, .. urls.SelectMany(u => new[] { "--url", u }), "--dev-tokens", "--warmup", "200ms", "--no-progress"])!;
        return await Scenarios.RunAsync(options, new RunStats(), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(90));
    }

    [Fact]
    public async Task Pairs_Cross_DeliversBothWaysThroughTheBackplane()
    {
        var before = await cluster.Nodes[0].BackplaneOutAsync();
        var r = await RunAsync(cluster.Urls, "pairs", "--cross", "--pairs", "2", "--inflight", "5", "--duration", "1s");
        Assert.Equal(4, r.Connections);
        Assert.True(r.Received > 0);
        Assert.Equal(0, r.Lost);
        Assert.Equal(0, r.Errors);
        Assert.True(r.Cross);
        Assert.Equal(cluster.Urls, r.Urls);
        // Side a (node 1) sent half of the messages, and each crossed to node 2 through the backplane.
        await cluster.Nodes[0].WaitForBackplaneOutAsync(before + r.Sent / 2);
    }

    [Fact]
    public async Task Rate_Cross_EveryMessageCrossesFromTheFirstNodeToTheSecond()
    {
        var before = await cluster.Nodes[0].BackplaneOutAsync();
        var r = await RunAsync(cluster.Urls, "rate", "--cross", "--pairs", "2", "--rate", "200", "--duration", "1s");
        Assert.Equal(0, r.Lost);
        Assert.InRange(r.Sent, 200, 300);
        await cluster.Nodes[0].WaitForBackplaneOutAsync(before + r.Sent);
    }

    [Fact]
    public async Task FanOut_Cross_EverySubscriberOnTheSecondNodeGetsEveryMessage()
    {
        var r = await RunAsync(cluster.Urls, "fanout", "--cross", "--subscribers", "20", "--rate", "100", "--duration", "1s");
        Assert.True(r.Sent > 0);
        Assert.Equal(0, r.Lost);
        Assert.Equal(r.Sent * 20, r.Received);
    }

    [Fact]
    public async Task Failover_KilledNode_ItsConnectionsMoveAndResume_NothingLostOrDoubled()
    {
        // A third node joins for this test alone and is killed; nodes 1 and 2 stay for the other tests. Connections go
        // round-robin: admin1 and client2 on node 3, client1 and client3 on node 1.
        var doomed = await cluster.StartNodeAsync(3);
        var r = await RunAsync([doomed.WsUrl, cluster.Urls[0]], "failover", "--pairs", "3", "--rate", "150", "--inflight", "10",
            "--duration", "3s", "--kill-pid", doomed.Pid.ToString(CultureInfo.InvariantCulture), "--kill-after", "1500ms");
        Assert.True(doomed.HasExited);
        Assert.True(r.Sent > 100, $"sent {r.Sent}");
        Assert.Equal(0, r.Lost);
        Assert.Equal(0, r.Extra["duplicated"]);
        Assert.Equal(0, r.Extra["out_of_order"]);
        Assert.Equal(r.Sent, r.Extra["stored"]);
        Assert.Equal(r.Sent, r.Extra["receipted"]);
        Assert.Equal(2, r.Extra["moved_connections"]);
        Assert.InRange(r.Extra["reconnect_ms"], 0, 10_000);
    }

    /// <summary>Two nodes of a fresh cluster (an exchange, user-event queues and a database of its own), for the whole class.</summary>
    public sealed class Cluster : IAsyncLifetime
    {
        private const string SigningKey = "load-tests-cluster-signing-key-0123456789abcdef";
        private static readonly string s_server = Environment.GetEnvironmentVariable("WSBROKER_TEST_MYSQL")
            ?? "Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test";
        private readonly string _name = $"wsbroker-load-{Guid.NewGuid():N}"[..24];
        private readonly string _database = $"wsbroker_l_{Guid.NewGuid():N}"[..24];
        private readonly List<Node> _nodes = [];

        public IReadOnlyList<Node> Nodes => _nodes;
        public string[] Urls => [_nodes[0].WsUrl, _nodes[1].WsUrl];

        public async Task InitializeAsync()
        {
            await ExecuteAsync($"CREATE DATABASE `{_database}`");
            // One after the other: node 1 is then the first consumer of every conversation shard and owns them all.
            await StartNodeAsync(1);
            await StartNodeAsync(2);
        }

        public async Task<Node> StartNodeAsync(int nodeId)
        {
            var rabbit = Environment.GetEnvironmentVariable("WSBROKER_TEST_RABBITMQ_HOST") ?? "127.0.0.1";
            var node = Node.Start(
            [
                "--Logging:LogLevel:Default=Warning", "--Storage:Provider=MySql",
                "--ConnectionStrings:MySql=" + new MySqlConnectionStringBuilder(s_server) { Database = _database }.ConnectionString,
                "--Bus:Transport=RabbitMq", $"--Bus:Host={rabbit}", $"--Bus:QueueName={_name}-users", "--Bus:QueueExpiresMs=60000",
                "--Cluster:Enabled=true", $"--Cluster:Exchange={_name}", $"--Broker:NodeId={nodeId}", $"--Auth:SigningKey={SigningKey}",
                "--Chat:DemoUsers=true", "--Chat:DevTokens=true", "--Chat:MessagesPerSecond=100000", "--Chat:MessageBurst=100000",
            ]);
            _nodes.Add(node);
            await node.WaitReadyAsync();
            return node;
        }

        public async Task DisposeAsync()
        {
            foreach (var node in _nodes) node.Dispose();
            await ExecuteAsync($"DROP DATABASE IF EXISTS `{_database}`");
        }

        private static async Task ExecuteAsync(string sql)
        {
            await using var connection = new MySqlConnection(s_server);
            await connection.OpenAsync();
            await new MySqlCommand(sql, connection).ExecuteNonQueryAsync();
        }
    }

    /// <summary>A broker node: <c>dotnet WsBroker.Broker.dll</c> (the Release build of src/Broker) on a free loopback port.</summary>
    public sealed class Node : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };

        private Node(Process process, int port)
        {
            _process = process;
            BaseUrl = new Uri($"http://127.0.0.1:{port}/");
            WsUrl = $"ws://127.0.0.1:{port}/ws";
        }

        public Uri BaseUrl { get; }
        public string WsUrl { get; }
        public int Pid => _process.Id;
        public bool HasExited => _process.HasExited;

        public static Node Start(IEnumerable<string> settings)
        {
            var port = FreePort();
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(BrokerDll());
            start.ArgumentList.Add("--urls");
            start.ArgumentList.Add($"http://127.0.0.1:{port}");
            foreach (var s in settings) start.ArgumentList.Add(s);
            var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
            var node = new Node(process, port);
            process.OutputDataReceived += (_, e) => node.Append(e.Data);
            process.ErrorDataReceived += (_, e) => node.Append(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return node;
        }

        private void Append(string? line)
        {
            lock (_output) _output.AppendLine(line);
        }

        /// <summary>Until /readyz answers 200 (database, bus and backplane up) and the demo user admin1 has a dev token.</summary>
        public async Task WaitReadyAsync()
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(45))
            {
                if (_process.HasExited) break;
                try
                {
                    using var ready = await _http.GetAsync(new Uri(BaseUrl, "/readyz"));
                    using var token = await _http.PostAsync(new Uri(BaseUrl, "/api/dev/token"),
                        new StringContent("{\"userId\":\"admin1\"}", Encoding.UTF8, "application/json"));
                    if (ready.IsSuccessStatusCode && token.IsSuccessStatusCode) return;
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException) { }
                await Task.Delay(100);
            }
            lock (_output) throw new InvalidOperationException($"node {BaseUrl} not ready (exited: {_process.HasExited}):\n{_output}");
        }

        /// <summary>wsbroker_backplane_messages_total{direction="out"} from /metrics.</summary>
        public async Task<long> BackplaneOutAsync()
        {
            var text = await _http.GetStringAsync(new Uri(BaseUrl, "/metrics"));
            return text.Split('\n').Where(l => l.StartsWith("wsbroker_backplane_messages_total{", StringComparison.Ordinal) && l.Contains("direction=\"out\"", StringComparison.Ordinal))
                .Sum(l => (long)double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        }

        public async Task WaitForBackplaneOutAsync(long atLeast)
        {
            long now = 0;
            for (var i = 0; i < 50 && (now = await BackplaneOutAsync()) < atLeast; i++) await Task.Delay(100);
            Assert.True(now >= atLeast, $"backplane out {now}, expected at least {atLeast}");
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill();
            _process.WaitForExit(10_000);
            _process.Dispose();
            _http.Dispose();
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        /// <summary>src/Broker/bin/&lt;configuration&gt;/net10.0/WsBroker.Broker.dll, which building this project builds.</summary>
        private static string BrokerDll()
        {
#if DEBUG
            const string configuration = "Debug";
#else
            const string configuration = "Release";
#endif
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "WsBroker.sln"))) dir = dir.Parent;
            var dll = Path.Combine(dir?.FullName ?? ".", "src", "Broker", "bin", configuration, "net10.0", "WsBroker.Broker.dll");
            return File.Exists(dll) ? dll : throw new InvalidOperationException($"broker not built: {dll}");
        }
    }
}
