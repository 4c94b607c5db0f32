using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Options;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Operations;

/// <summary>Finds the repository and the built broker; runs processes with bounded waits.</summary>
internal static class Repo
{
    public static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "WsBroker.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
        }
    }

    public static string BrokerDll => Path.Combine(Root, "src/Broker/bin/Release/net10.0/WsBroker.Broker.dll");

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args,
        IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Root };
        foreach (var (k, v) in env ?? new Dictionary<string, string?>()) info.Environment[k] = v;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromSeconds(60));
        return (process.ExitCode, await stdout, await stderr);
    }
}

public class ConfigurationTests
{
    [Theory]
    [InlineData("--Broker:NodeId=5000", "Broker:NodeId must be between 0 and 1023")]
    [InlineData("--Broker:NodeId=abc", "'Broker:NodeId'")]
    [InlineData("--Broker:MaxFrameBytes=10", "Broker:MaxFrameBytes must be at least 256")]
    [InlineData("--Broker:MaxConnections=2147483647", "Broker:MaxConnections must be between 0 and 10000000")]
    [InlineData("--Broker:HeartBeatReceiveMs=1073741824", "Broker:HeartBeatReceiveMs must be 0 (off) or between 100 and 86400000")]
    [InlineData("--Auth:SigningKey=too-short", "Auth:SigningKey must be at least 32 bytes")]
    [InlineData("--Auth:PublicKeyPath=/nope.pem", "Auth:PublicKeyPath: file not found: /nope.pem")]
    [InlineData("--Storage:BatchSize=0", "Storage:BatchSize must be between 1 and 1000")]
    [InlineData("--Bus:Transport=Kafka", "Bus:Transport must be InMemory or RabbitMq, not 'Kafka'")]
    [InlineData("--Bus:PrefetchCount=0", "Bus:PrefetchCount must be between 1 and 10000")]
    [InlineData("--Chat:TypingPerSecond=0", "Chat:TypingPerSecond must be between 1 and 1000")]
    [InlineData("--Auth:DevTokenLifetimeMinutes=-5", "Auth:DevTokenLifetimeMinutes must be between 1 and 10080")]
    [InlineData("--Logging:LogLevel:Default=Verbose", "Logging:LogLevel: Configuration value 'Verbose' is not supported")]
    [InlineData("--urls=http://127.0.0.1:99999", "Urls: 'http://127.0.0.1:99999': the port must be between 0 and 65535")]
    [InlineData("--urls=127.0.0.1:8080", "Urls: '127.0.0.1:8080': ")]
    [InlineData("--Broker:NodeIdd=3", "Broker:NodeIdd is not a known setting")]
    [InlineData("--Broker:NodeId:Extra=3", "Broker:NodeId:Extra is not a known setting")]
    [InlineData("--Storage:BatchSise=3", "Storage:BatchSise is not a known setting")]
    [InlineData("--Bus:Hots=rabbit", "Bus:Hots is not a known setting")]
    [InlineData("--Chat:DemoUser=true", "Chat:DemoUser is not a known setting")]
    [InlineData("--Auth:SigningKy=0123456789abcdef0123456789abcdef", "Auth:SigningKy is not a known setting")]
    [InlineData("--Acl:Rules:0:Destinaton=/topic/a/#", "Acl:Rules:0:Destinaton is not a known setting")]
    [InlineData("--Cluster:Enable=true", "Cluster:Enable is not a known setting")]
    [InlineData("--Cluster:Enabled=true", "Cluster:Enabled needs Bus:Transport=RabbitMq (RabbitMQ is the backplane)")]
    [InlineData("--Cluster:MaxBatchMessages=0", "Cluster:MaxBatchMessages must be between 1 and 100000")]
    [InlineData("--Storage:Provider=Oracle", "Storage:Provider: 'Oracle' is not one of Sqlite, MySql")]
    [InlineData("--Broker:Transport=Http3", "Broker:Transport: 'Http3' is not one of AspNetCore, Pipeline")]
    [InlineData("--Broker:Transport=7", "Broker:Transport must be Pipeline or AspNetCore, not '7'")]
    [InlineData("--Acl:Rules:0:Destination=/elsewhere", "Acl:Rules:0:Destination must start with /topic/")]
    [InlineData("--Acl:Rules:0:Send:0=admins", "Acl:Rules:0: 'admins' must be '*', 'role:<role>' or 'user:<id>'")]
    [InlineData("--Storage:Provider=MySql", "Auth:SigningKey or Auth:PublicKeyPath must be set")]
    public async Task Start_InvalidConfiguration_ExitsWith2AndNamesTheOption(string setting, string message)
    {
        var data = Path.Combine(Path.GetTempPath(), $"wsbroker-cfg-{Guid.NewGuid():N}.db");
        var (code, _, stderr) = await Repo.RunAsync("dotnet",
            [Repo.BrokerDll, "--urls", "http://127.0.0.1:0", $"--ConnectionStrings:Sqlite=Data Source={data}", setting]);
        Assert.Equal(2, code);
        Assert.Contains("wsbroker: invalid configuration:", stderr);
        Assert.Contains(message, stderr);
    }
}

public class StartupValidationTests
{
    [Fact]
    public void Build_UnknownKeys_ThrowsOneTypedErrorNamingEach()
    {
        var ex = Assert.Throws<WsBroker.Broker.Hosting.BrokerConfigurationException>(() =>
            BrokerApp.Build(["--urls", "http://127.0.0.1:0", "--cluster:enabeld=true", "--BROKER:nodeid=3", "--Broker:Typo=1", "--Acl:Rules:0:Send:0=*"]));
        Assert.Equal(["Broker:Typo is not a known setting", "Cluster:enabeld is not a known setting"], ex.Failures);   // section order
    }

    [Fact]
    public void Build_BadListenAddress_ThrowsBeforeTheHostIsBuilt()
    {
        var ex = Assert.Throws<WsBroker.Broker.Hosting.BrokerConfigurationException>(() =>
            BrokerApp.Build(["--urls", "http://127.0.0.1:0;http://127.0.0.1:70000"]));
        Assert.Equal(["Urls: 'http://127.0.0.1:70000': the port must be between 0 and 65535"], ex.Failures);
    }

    [Theory]
    [InlineData("WSBROKER_Cluster__Enabeld", "Cluster:Enabeld is not a known setting")]
    [InlineData("Broker__NodId", "Broker:NodId is not a known setting")]
    [InlineData("WSBROKER_Acl__Rules__0__Subscrbe__0", "Acl:Rules:0:Subscrbe is not a known setting")]
    public async Task Start_TypoInEnvironmentVariable_ExitsWith2AndNamesTheKey(string variable, string message)
    {
        var data = Path.Combine(Path.GetTempPath(), $"wsbroker-cfg-{Guid.NewGuid():N}.db");
        var (code, _, stderr) = await Repo.RunAsync("dotnet", [Repo.BrokerDll, "--urls", "http://127.0.0.1:0", $"--ConnectionStrings:Sqlite=Data Source={data}"],
            new Dictionary<string, string?> { [variable] = "1" });
        Assert.Equal(2, code);
        Assert.Contains("wsbroker: invalid configuration: " + message, stderr);
    }
}

public class DeploymentTests
{
    [Fact]
    public async Task DockerCompose_Config_IsValid_AndNeedsTheSigningKey()
    {
        var compose = await EnsureDockerComposeAsync();
        var env = new Dictionary<string, string?> { ["WSBROKER_SIGNING_KEY"] = new string('k', 48) };
        var (code, stdout, stderr) = await Repo.RunAsync(compose, ["config"], env);
        Assert.True(code == 0, stderr);
        foreach (var expected in new[] { "mariadb:", "rabbitmq:", "broker1:", "broker2:", "haproxy:", "Storage__Provider: MySql", "Bus__Transport: RabbitMq",
            "Cluster__Enabled: \"true\"", "Broker__NodeId: '2'", "WSBROKER_NODE2: broker2:8080", "/deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
            "127.0.0.1:15672:15672", "service_healthy", "mariadb-data" })
            Assert.Contains(expected, stdout);
        var missing = await Repo.RunAsync(compose, ["config", "-q"], new Dictionary<string, string?> { ["WSBROKER_SIGNING_KEY"] = null });
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("WSBROKER_SIGNING_KEY", missing.Stderr);
    }

    [Fact]
    public void Dockerfile_IsMultiStage_NonRoot_OnTheAspNetRuntime()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Repo.Root, "src/Broker/Dockerfile"));
        Assert.Contains("FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build", dockerfile);
        Assert.Contains("FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime", dockerfile);
        Assert.Contains("USER app", dockerfile);
        Assert.Contains("COPY web-js/ web-js/", dockerfile);
        // Everything it copies exists and is in the build context; host build output is not.
        var ignored = File.ReadAllLines(Path.Combine(Repo.Root, ".dockerignore")).Where(l => l.Length > 0 && l[0] != '#').ToList();
        Assert.Contains("**/bin/", ignored);
        Assert.Contains("**/obj/", ignored);
        Assert.Contains("**/node_modules/", ignored);
        foreach (var copy in Regex.Matches(dockerfile, @"^COPY (?!--from)(.+) \S+$", RegexOptions.Multiline).Select(m => m.Groups[1].Value))
        {
            foreach (var source in copy.Split(' '))
            {
                Assert.True(File.Exists(Path.Combine(Repo.Root, source)) || Directory.Exists(Path.Combine(Repo.Root, source)), $"COPY {source}: not found");
                Assert.DoesNotContain(ignored, i => source.StartsWith(i.TrimEnd('/'), StringComparison.Ordinal));
            }
        }
    }

    private static async Task<string> EnsureDockerComposeAsync()
    {
        if (File.Exists("/usr/bin/docker-compose")) return "/usr/bin/docker-compose";
        // The Debian package (docker-compose 1.x) validates the file without a Docker engine.
        var (code, _, stderr) = await Repo.RunAsync("apt-get", ["-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "docker-compose"],
            new Dictionary<string, string?> { ["DEBIAN_FRONTEND"] = "noninteractive" }, TimeSpan.FromMinutes(10));
        Assert.True(code == 0, "apt-get install docker-compose failed: " + stderr);
        return "/usr/bin/docker-compose";
    }
}

[Collection(MetricsCollection.Name)]
public class MetricsTests
{
    [Fact]
    public async Task Metrics_ChangeAsTrafficFlows()
    {
        await using var broker = await TestBroker.StartAsync("Chat:DemoUsers=true");
        using var http = new HttpClient { BaseAddress = broker.BaseUri };
        var before = await MetricsText.ScrapeAsync(http);
        await using var client = await broker.ConnectAsync("client1");
        await client.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/private-chat/admin1/client1\n\n\0SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:m\n\nmetered\0");
        await client.ReceiveUntilReceiptAsync("m");
        // The store completes the SEND (and so its RECEIPT) before it reports the commit, and the writer counts a frame once
        // its flush returns, after the client may have read it: wait for the report and the counts.
        bool Settled(MetricsText m) => m["wsbroker_persistence_commit_seconds_count"] != before["wsbroker_persistence_commit_seconds_count"]
            && Out(m, "RECEIPT") == Out(before, "RECEIPT") + 1 && Out(m, "MESSAGE") > Out(before, "MESSAGE");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!Settled(await MetricsText.ScrapeAsync(http)) && DateTime.UtcNow < deadline) await Task.Delay(20);
        var response = await http.GetAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        var after = MetricsText.Parse(text);
        Assert.True(after.Has("wsbroker_connections"), text);
        Assert.Equal(1, after["wsbroker_connections"]);
        Assert.Equal(1, after["wsbroker_sessions{protocol=\"stomp\"}"]);
        Assert.Equal(0, after["wsbroker_sessions{protocol=\"raw\"}"]);
        Assert.Equal(1, after["wsbroker_subscriptions"]);
        Assert.Equal(before["wsbroker_connections_opened_total"] + 1, after["wsbroker_connections_opened_total"]);
        Assert.Equal(before["wsbroker_frames_in_total{command=\"SEND\"}"] + 1, after["wsbroker_frames_in_total{command=\"SEND\"}"]);
        Assert.Equal(before["wsbroker_frames_in_total{command=\"SUBSCRIBE\"}"] + 1, after["wsbroker_frames_in_total{command=\"SUBSCRIBE\"}"]);
        static double Out(MetricsText m, string command) => m[$"wsbroker_frames_out_total{{command=\"{command}\"}}"];
        Assert.Equal(Out(before, "CONNECTED") + 1, Out(after, "CONNECTED"));
        Assert.Equal(Out(before, "RECEIPT") + 1, Out(after, "RECEIPT"));
        Assert.True(Out(after, "MESSAGE") > Out(before, "MESSAGE"), "the delivery of the message");
        Assert.Equal(Out(before, "ERROR"), Out(after, "ERROR"));
        Assert.True(after["wsbroker_deliveries_total"] > before["wsbroker_deliveries_total"]);
        Assert.True(after["wsbroker_bytes_in_total"] > before["wsbroker_bytes_in_total"], text);
        Assert.True(after["wsbroker_bytes_out_total"] > before["wsbroker_bytes_out_total"], text);
        Assert.True(after["wsbroker_persistence_commit_seconds_count"] > before["wsbroker_persistence_commit_seconds_count"], text);
        Assert.True(after["wsbroker_persistence_commit_seconds_bucket{le=\"+Inf\"}"] >= 1);
        Assert.True(after.Has("wsbroker_persistence_commit_seconds_bucket{le=\"0.001\"}"), "the buckets /metrics always had");
        Assert.True(after["wsbroker_persistence_committed_messages_total"] >= 1);
        Assert.Equal(0, after["wsbroker_persistence_queue_depth"]);
        Assert.True(after["process_resident_memory_bytes"] > 0);
        Assert.True(after["dotnet_gc_heap_bytes"] > 0);
    }

    [Fact]
    public async Task Metrics_CountErrorsAndDisconnectsByKindAndReason()
    {
        await using var broker = await TestBroker.StartAsync();
        var before = await MetricsText.ScrapeAsync(broker.BaseUri);
        await using (var client = await broker.ConnectAsync("client1"))
        {
            await client.SendAsync("BOGUS\n\n\0");
            await client.ReceiveUntilClosedAsync();
        }
        var deadline = DateTime.UtcNow.AddSeconds(10);
        MetricsText after;
        do after = await MetricsText.ScrapeAsync(broker.BaseUri);
        while (after["wsbroker_disconnects_total{reason=\"ProtocolError\"}"] == before["wsbroker_disconnects_total{reason=\"ProtocolError\"}"]
            && DateTime.UtcNow < deadline);
        Assert.Equal(before["wsbroker_disconnects_total{reason=\"ProtocolError\"}"] + 1, after["wsbroker_disconnects_total{reason=\"ProtocolError\"}"]);
        Assert.Equal(before["wsbroker_errors_total{kind=\"protocol\"}"] + 1, after["wsbroker_errors_total{kind=\"protocol\"}"]);
        Assert.Equal(before["wsbroker_frames_out_total{command=\"ERROR\"}"] + 1, after["wsbroker_frames_out_total{command=\"ERROR\"}"]);
    }
}

public class EnvironmentConfigurationTests
{
    /// <summary>The container image and docker-compose.yml configure the broker through environment variables only.</summary>
    [Fact]
    public async Task Start_ConfiguredByEnvironmentOnly_ListensWhereAspnetcoreUrlsSays_AndHealthCheckPasses()
    {
        var port = FreePort();
        var data = Path.Combine(Path.GetTempPath(), $"wsbroker-env-{Guid.NewGuid():N}.db");
        var env = new Dictionary<string, string?>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
            ["Storage__Provider"] = "Sqlite",
            ["ConnectionStrings__Sqlite"] = $"Data Source={data}",
            ["Chat__DemoUsers"] = "true",
            ["Logging__LogLevel__Default"] = "Warning",
        };
        var info = new ProcessStartInfo("dotnet", [Repo.BrokerDll]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (k, v) in env) info.Environment[k] = v;
        using var process = Process.Start(info)!;
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };   // a cold process's first answer may be slow
            var deadline = DateTime.UtcNow.AddSeconds(30);
            HttpStatusCode? status = null;
            while (status != HttpStatusCode.OK && DateTime.UtcNow < deadline && !process.HasExited)
            {
                try { status = (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/healthz"))).StatusCode; }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { await Task.Delay(200); }
            }
            Assert.Equal(HttpStatusCode.OK, status);
            var (code, _, stderr) = await Repo.RunAsync("dotnet", [Repo.BrokerDll, "--healthcheck"], env);
            Assert.True(code == 0, stderr);
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync();
            File.Delete(data);
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public class GracefulShutdownTests
{
    [Fact]
    public async Task Sigterm_DuringChatLoad_EveryReceiptedMessageIsStored_AndTheProcessExitsCleanly()
    {
        const string key = "graceful-shutdown-test-signing-key-0123456789";
        var data = Path.Combine(Path.GetTempPath(), $"wsbroker-sigterm-{Guid.NewGuid():N}.db");
        var info = new ProcessStartInfo("dotnet", [Repo.BrokerDll, "--urls", "http://127.0.0.1:0", $"--Auth:SigningKey={key}",
            $"--ConnectionStrings:Sqlite=Data Source={data}", "--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var url = await ReadUrlAsync(process);
        var issuer = new JwtIssuer(Microsoft.Extensions.Options.Options.Create(new AuthOptions { SigningKey = key }));
        var receipted = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var senders = new[] { "client1", "client2", "client3" }.Select(user => Task.Run(async () =>
        {
            await using var client = await StompTestClient.OpenAsync(new Uri(url.Replace("http", "ws", StringComparison.Ordinal) + "/ws"));
            await client.SendAsync($"CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer {issuer.Issue(user, "client", user, TimeSpan.FromHours(1))}\n\n\0");
            await client.ReceiveAsync(StompCommand.Connected);
            var sent = new Dictionary<string, string>();
            var n = 0;
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    // Keep up to 20 messages in flight; every RECEIPT names one that must be stored.
                    while (sent.Count < 20)
                    {
                        var body = $"{user}-{n++}";
                        sent[body] = body;
                        await client.SendAsync($"SEND\ndestination:/topic/private-chat/admin1/{user}\nreceipt:{body}\n\n{body}\0");
                    }
                    var frame = await client.ReceiveAsync(TimeSpan.FromSeconds(10));
                    if (frame.Command == StompCommand.Receipt && sent.Remove(frame.Headers["receipt-id"]!)) receipted.Add(frame.Headers["receipt-id"]!);
                }
            }
            catch (Exception ex) when (ex is System.Net.WebSockets.WebSocketException or OperationCanceledException or IOException) { }
            return n;
        })).ToArray();
        var flowing = DateTime.UtcNow.AddSeconds(30);
        while (receipted.Count < 20 && DateTime.UtcNow < flowing) await Task.Delay(100);
        Assert.True(receipted.Count > 0, "traffic is flowing");
        var kill = await Repo.RunAsync("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]);
        Assert.Equal(0, kill.ExitCode);
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        stop.Cancel();
        await Task.WhenAll(senders).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, process.ExitCode);

        var stored = new HashSet<string>();
        await using (var db = new SqliteConnection($"Data Source={data}"))
        {
            await db.OpenAsync();
            await using var command = new SqliteCommand("SELECT body FROM messages", db);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync()) stored.Add(reader.GetString(0));
        }
        SqliteConnection.ClearAllPools();
        Assert.All(receipted, body => Assert.Contains(body, stored));
        foreach (var f in new[] { data, data + "-wal", data + "-shm" }) File.Delete(f);
    }

    private static async Task<string> ReadUrlAsync(Process process)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(cts.Token) ?? throw new InvalidOperationException("broker exited: " + await process.StandardError.ReadToEndAsync());
            var match = Regex.Match(line, @"Now listening on: (http://127\.0\.0\.1:\d+)");
            if (match.Success)
            {
                _ = process.StandardOutput.ReadToEndAsync();      // keep draining
                return match.Groups[1].Value;
            }
        }
    }
}
