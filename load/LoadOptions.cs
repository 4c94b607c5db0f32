using System.Globalization;
using System.Net;
using System.Text;
using WsBroker.Protocol;

namespace WsBroker.Load;

/// <summary>Bad command line: the message names the option; exit code 2.</summary>
public sealed class LoadUsageException(string message) : Exception(message)
{
    public LoadUsageException() : this("bad arguments") { }
    public LoadUsageException(string message, Exception inner) : this(message + ": " + inner.Message) { }
}

/// <summary>Everything a run is told on the command line. Every run is bounded in time and in count.</summary>
public sealed record LoadOptions
{
    public static readonly string[] Scenarios = ["pairs", "fanout", "rate", "idle", "chat", "chat-rate", "failover"];

    public string Scenario { get; init; } = "pairs";
    /// <summary>Every --url, in order; connections are spread over them round-robin (<see cref="UrlFor"/>).</summary>
    public IReadOnlyList<Uri> Urls { get; init; } = [new("ws://127.0.0.1:8080/ws")];
    /// <summary>The first URL: the default label and the URL of reports.</summary>
    public Uri Url => Urls[0];
    /// <summary>pairs, rate, fanout: the sending side on the first URL's node, the receiving side on the second's.</summary>
    public bool Cross { get; init; }
    public int? KillPid { get; init; }
    public TimeSpan? KillAfter { get; init; }
    public string? Token { get; init; }
    public string? Login { get; init; }
    public string? Passcode { get; init; }
    public bool DevTokens { get; init; }
    public string Prefix { get; init; } = "/topic/load";
    public string SubProtocol { get; init; } = "v12.stomp";
    /// <summary>--client lean: the tool's own upgrade on a socket, then .NET's WebSocket framing (<see cref="LeanWebSocket"/>);
    /// otherwise ClientWebSocket.</summary>
    public bool LeanClient { get; init; }
    public int Connections { get; init; } = 1000;
    public int Pairs { get; init; } = 50;
    public int Subscribers { get; init; } = 100;
    public int InFlight { get; init; } = 10;
    public int Rate { get; init; } = 1000;
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);
    public long Messages { get; init; } = 1_000_000;
    public int Size { get; init; } = 128;
    public int? Pid { get; init; }
    public Uri? GcUrl { get; init; }
    public string? Out { get; init; }
    public bool AllowRemote { get; init; }
    public bool Progress { get; init; } = true;
    public string Label { get; init; } = "";
    /// <summary>The CONNECT frame's heart-beat header (default 0,0: none). The tool sends at the negotiated interval.</summary>
    public StompHeartBeat HeartBeat { get; init; }
    /// <summary>Connections are spread over 127.0.0.1 .. 127.0.0.&lt;n&gt;, so ephemeral ports are not the limit.</summary>
    public int SourceAddresses { get; init; } = 1;
    /// <summary>idle: the connections are held by this many child processes (each process has its own open-file limit).</summary>
    public int Processes { get; init; } = 1;
    /// <summary>Connections opened at a time (WebSocket upgrade + CONNECT, and SUBSCRIBE where the scenario subscribes).</summary>
    public int ConnectConcurrency { get; init; } = 32;
    /// <summary>Hidden --child &lt;first&gt;: this process is a child of an idle run with --processes; its connections are
    /// numbered from &lt;first&gt;, and it talks to its parent in lines over stdin and stdout (<see cref="ChildProcess"/>).</summary>
    public int? ChildOffset { get; init; }
    /// <summary>The command line as given: the children of --processes get it back with their share.</summary>
    public IReadOnlyList<string> Args { get; init; } = [];

    /// <summary>The URL of the <paramref name="connection"/>-th connection opened (from 0): round-robin over <see cref="Urls"/>.</summary>
    public Uri UrlFor(int connection) => Urls[connection % Urls.Count];

    public const string Usage = """
        wsbroker-load: load generator for any STOMP-over-WebSocket broker (WsBroker, RabbitMQ Web-STOMP, ...)

        usage: dotnet run -c Release --project load -- <scenario> [options]

        scenarios:
          pairs    P pairs of connections chatting in a closed loop, W messages in flight each way: throughput, latency
          fanout   one publisher at --rate, S subscribers on one topic: deliveries/s, latency, loss per subscriber
          rate     a fixed offered --rate across P pairs: latency percentiles corrected for coordinated omission
                   (fanout and rate pace from one thread, SCHED_FIFO when allowed; send_lag_* is the tool's own lateness)
          idle     C idle connections with one subscription each, held for --duration: how many held, the connect rate
                   (upgrade + CONNECT + SUBSCRIBE with RECEIPT), live heap (--gc-url) and RSS growth (--pid) per connection,
                   the broker's CPU over the hold (--pid), connections the broker closed, heart-beats sent and received
          chat     WsBroker chat: customers send to /topic/private-chat/admin1/clientN with receipts (stored): stored/s, receipt latency
                   (start the broker with --Chat:MessagesPerSecond and --Chat:MessageBurst raised: the default limit is for people)
          chat-rate  WsBroker chat at a fixed offered --rate from client1..3 to admin1 (subscribed to its /*): latency from
                   SEND to the admin's MESSAGE, which comes after the commit
          failover WsBroker cluster: P customers (client1..3) and admin1 chat at --rate in all (--inflight unanswered each), every
                   message with a client-msg-id and a receipt, over at least two --url; at --kill-after the tool kills -9
                   the node --kill-pid; whoever was on it reconnects to the next URL, resubscribes with since:<last id held>
                   and resends what has no RECEIPT. Then it reads the history over REST from a live node and reports sent,
                   stored, receipted, lost, duplicated, out of order, and the reconnect time. Exit 1 if lost or duplicated.

        options:
          --url <ws-url>          broker WebSocket URL (default ws://127.0.0.1:8080/ws). Repeat it for a cluster: connections
                                  go round-robin over the URLs in the order they are opened (pairs: a on one, b on the next);
                                  the first URL names the run
          --cross                 pairs, rate, fanout with two or more --url: every message crosses nodes (pairs and rate:
                                  side a on the first URL, side b on the second; fanout: publisher on the first, subscribers
                                  on the second)
          --kill-pid <pid>        failover: the broker node to kill -9 (a dotnet WsBroker.Broker.dll process, one of the --url)
          --kill-after <time>     failover: when, from the start of the load (within --warmup + --duration)
          --token <jwt>           JWT for every connection (Authorization: Bearer); --token-file <path> reads it from a file
          --dev-tokens            get tokens from the broker's POST /api/dev/token (WsBroker embedded mode)
          --login <l> --passcode <p>   STOMP login (RabbitMQ: guest/guest)
          --prefix <destination>  destination prefix; names are appended with '.' (RabbitMQ's /topic/ names have no '/')
                                  (default /topic/load, e.g. /topic/load.pair3.a)
          --subprotocol <p>       WebSocket subprotocol (default v12.stomp)
          --client system|lean    system (default): .NET's ClientWebSocket; lean: the tool's own HTTP/1.1 upgrade on a
                                  socket, then .NET's WebSocket framing over it: the same frames at a fraction of the
                                  tool's CPU per connection (ws:// only)
          --connections <n>       idle: connections (default 1000)
          --processes <n>         idle: hold the connections from n child processes of the tool, 1 to 16 (default 1), each
                                  with its share (every process has its own open-file limit, see ulimit -n); this one measures
          --source-addresses <n>  spread connections over source addresses 127.0.0.1 .. 127.0.0.<n>, 1 to 64 (default 1),
                                  so ephemeral ports are not the limit (needs IPv4 loopback URLs)
          --connect-concurrency <n>  connections opened at a time, 1 to 1024 (default 32)
          --heart-beat <cx>,<cy>  CONNECT heart-beat header in ms, each 0 or 100 to 3600000 (default 0,0: none). The tool
                                  sends heart-beats (EOL) at the negotiated interval (STOMP 1.2: max(cx, the broker's sy)) from
                                  one timer for all connections, and counts the broker's heart-beats
          --pairs <n>             pairs/rate/chat: pairs or customers (default 50)
          --subscribers <n>       fanout: subscribers (default 100)
          --inflight <n>          pairs/chat: messages in flight per connection (default 10)
          --rate <n>              fanout/rate/chat-rate: messages per second offered (default 1000)
          --duration <time>       measured time, e.g. 10s, 500ms, 1m (default 10s)
          --warmup <time>         unmeasured time before it (default 2s)
          --messages <n>          stop after this many messages even before --duration (default 1000000)
          --size <bytes>          message body size, at least 16 (default 128)
          --pid <pid>             broker process id: report its resident memory (idle: per connection, and its CPU while idle)
          --gc-url <url>          idle: POST here before and after connecting to force a full GC in the broker and report its
                                  live managed heap per connection (WsBroker: /debug/gc with Broker:DiagnosticsEndpoints=true)
          --out <folder>          write report.md (appended), <label>-<scenario>.json and PNG plots there
          --label <text>          name of the broker in the report (default: the URL)
          --allow-remote          allow a non-loopback broker URL (refused by default)
          --no-progress           no live progress display (also off when stderr is not a terminal)
          -h, --help              this text

        Output: one JSON line per run on stdout; progress on stderr. Exit codes: 0 done, 1 run failed, 2 bad arguments.
        """;

    /// <summary>Parses the command line; null means "print help".</summary>
    public static LoadOptions? Parse(string[] args)
    {
        if (args.Length == 0 || args.Any(a => a is "-h" or "--help")) return null;
        var scenario = args[0];
        if (!Scenarios.Contains(scenario)) throw new LoadUsageException($"unknown scenario '{scenario}': use {string.Join(", ", Scenarios)}");
        var o = new LoadOptions { Scenario = scenario, Args = args };
        string? tokenFile = null;
        var urls = new List<Uri>();
        for (var i = 1; i < args.Length; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : throw new LoadUsageException($"{name} needs a value");
            if (name == "--url")
            {
                if (urls.Count == MaxUrls) throw new LoadUsageException($"--url may be given at most {MaxUrls} times");
                urls.Add(ParseUrl(Value()));
                continue;
            }
            o = name switch
            {
                "--token" => o with { Token = Value() },
                "--token-file" => o with { Token = ReadToken(tokenFile = Value()) },
                "--dev-tokens" => o with { DevTokens = true },
                "--login" => o with { Login = Value() },
                "--passcode" => o with { Passcode = Value() },
                "--prefix" => o with { Prefix = ParsePrefix(Value()) },
                "--subprotocol" => o with { SubProtocol = Value() },
                "--client" => o with { LeanClient = Value() switch
                {
                    "lean" => true,
                    "system" => false,
                    var other => throw new LoadUsageException($"--client must be system or lean, not '{other}'"),
                } },
                "--connections" => o with { Connections = Int(name, Value(), 1, 60_000) },
                "--pairs" => o with { Pairs = Int(name, Value(), 1, 10_000) },
                "--subscribers" => o with { Subscribers = Int(name, Value(), 1, 50_000) },
                "--inflight" => o with { InFlight = Int(name, Value(), 1, 10_000) },
                "--rate" => o with { Rate = Int(name, Value(), 1, 10_000_000) },
                "--duration" => o with { Duration = Time(name, Value(), TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1)) },
                "--warmup" => o with { Warmup = Time(name, Value(), TimeSpan.Zero, TimeSpan.FromMinutes(10)) },
                "--messages" => o with { Messages = Int(name, Value(), 1, int.MaxValue) },
                "--size" => o with { Size = Int(name, Value(), 16, 1024 * 1024) },
                "--pid" => o with { Pid = Int(name, Value(), 1, int.MaxValue) },
                "--cross" => o with { Cross = true },
                "--kill-pid" => o with { KillPid = Int(name, Value(), 1, int.MaxValue) },
                "--kill-after" => o with { KillAfter = Time(name, Value(), TimeSpan.Zero, TimeSpan.FromHours(1)) },
                "--gc-url" => o with { GcUrl = Uri.TryCreate(Value(), UriKind.Absolute, out var gc) && gc.Scheme is "http" or "https" ? gc : throw new LoadUsageException("--gc-url must be an http(s) URL") },
                "--out" => o with { Out = Value() },
                "--label" => o with { Label = Value() },
                "--allow-remote" => o with { AllowRemote = true },
                "--no-progress" => o with { Progress = false },
                "--heart-beat" => o with { HeartBeat = ParseHeartBeat(Value()) },
                "--source-addresses" => o with { SourceAddresses = Int(name, Value(), 1, MaxSourceAddresses) },
                "--processes" => o with { Processes = Int(name, Value(), 1, 16) },
                "--connect-concurrency" => o with { ConnectConcurrency = Int(name, Value(), 1, 1024) },
                "--child" => o with { ChildOffset = Int(name, Value(), 0, 60_000) },
                _ => throw new LoadUsageException($"unknown option '{name}'"),
            };
        }
        if (urls.Count > 0) o = o with { Urls = urls };
        if (!o.AllowRemote && o.Urls.FirstOrDefault(u => !IsLoopback(u)) is { } remote)
            throw new LoadUsageException($"--url {remote} is not a loopback address: load is aimed at 127.0.0.1 unless --allow-remote");
        CheckCluster(o);
        CheckConnections(o);
        if ((o.Login is null) != (o.Passcode is null)) throw new LoadUsageException("--login and --passcode go together");
        if (o.LeanClient && o.Urls.FirstOrDefault(u => u.Scheme != "ws") is { } secure)
            throw new LoadUsageException($"--client lean speaks ws:// only (no TLS), not {secure}: use --client system");
        if (o.GcUrl is not null && !o.AllowRemote && !IsLoopback(o.GcUrl))
            throw new LoadUsageException($"--gc-url {o.GcUrl} is not a loopback address (use --allow-remote)");
        if (o.Scenario is "chat" or "chat-rate" && !o.DevTokens)
            throw new LoadUsageException("chat connects as the demo customers client1..client3: it needs --dev-tokens (a single --token would be rejected on the other conversations)");
        if (o.Pid is { } pid && !File.Exists($"/proc/{pid}/status")) throw new LoadUsageException($"--pid {pid}: no such process");
        _ = tokenFile;
        return o;
    }

    private const int MaxUrls = 16;
    public const int MaxSourceAddresses = 64;

    /// <summary>The rules of --processes, --child and --source-addresses.</summary>
    private static void CheckConnections(LoadOptions o)
    {
        if (o.Processes > 1 && o.Scenario != "idle") throw new LoadUsageException($"--processes is for idle, not {o.Scenario}");
        if (o.Processes > o.Connections) throw new LoadUsageException($"--processes {o.Processes} is more than --connections {o.Connections}");
        if (o.ChildOffset is not null && (o.Scenario != "idle" || o.Processes > 1)) throw new LoadUsageException("--child is for the children of idle --processes");
        // Bound to 127.0.0.x, a socket can reach only an IPv4 loopback address.
        if (o.SourceAddresses > 1 && o.Urls.FirstOrDefault(u => !IsIPv4Loopback(u)) is { } url)
            throw new LoadUsageException($"--source-addresses needs IPv4 loopback URLs (127.x.x.x or localhost), not {url}");
    }

    private static bool IsIPv4Loopback(Uri url) =>
        url.Host == "localhost" || (IPAddress.TryParse(url.Host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && IPAddress.IsLoopback(ip));

    /// <summary>"cx,cy": each 0 (none) or from 100 ms to an hour.</summary>
    private static StompHeartBeat ParseHeartBeat(string text)
    {
        static bool Valid(int ms) => ms == 0 || ms is >= 100 and <= 3_600_000;
        return StompHeartBeat.TryParse(Encoding.ASCII.GetBytes(text), out var heartBeat) && Valid(heartBeat.Outgoing) && Valid(heartBeat.Incoming) ? heartBeat
            : throw new LoadUsageException($"--heart-beat must be <cx>,<cy> in ms, each 0 or from 100 to 3600000, not '{text}'");
    }

    /// <summary>The rules of --cross and of failover's options: a bad combination is a usage error, not a surprising run.</summary>
    private static void CheckCluster(LoadOptions o)
    {
        if (o.Cross && o.Scenario is not ("pairs" or "rate" or "fanout"))
            throw new LoadUsageException($"--cross is for pairs, rate and fanout, not {o.Scenario}");
        if (o.Cross && o.Urls.Count < 2) throw new LoadUsageException("--cross needs at least two --url (the nodes traffic crosses between)");
        if (o.Scenario != "failover")
        {
            if (o.KillPid is not null || o.KillAfter is not null) throw new LoadUsageException("--kill-pid and --kill-after are for the failover scenario");
            return;
        }
        if (o.Urls.Count < 2) throw new LoadUsageException("failover needs at least two --url: the connections on the killed node move to another");
        if (!o.DevTokens) throw new LoadUsageException("failover connects as the demo users admin1 and client1..client3: it needs --dev-tokens");
        if (o.KillPid is not { } pid || o.KillAfter is not { } after) throw new LoadUsageException("failover needs --kill-pid and --kill-after");
        if (after >= o.Warmup + o.Duration)
            throw new LoadUsageException($"--kill-after {after.TotalSeconds}s must be within the run (--warmup + --duration = {(o.Warmup + o.Duration).TotalSeconds}s)");
        if (NotABrokerNode(pid) is { } why) throw new LoadUsageException($"--kill-pid {pid}: {why}");
    }

    /// <summary>Why <paramref name="pid"/> is not a WsBroker node the tool may kill, or null when it is one: a process
    /// whose command line is <c>dotnet … WsBroker.Broker.dll …</c> (how scripts and tests start a node).</summary>
    public static string? NotABrokerNode(int pid)
    {
        string[] argv;
        try
        {
            argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "no such process";
        }
        return IsBrokerNode(argv) ? null : $"not a WsBroker node (dotnet WsBroker.Broker.dll): {string.Join(' ', argv.Take(4))}";
    }

    /// <summary>A command line <c>dotnet [host options] …/WsBroker.Broker.dll [args]</c>.</summary>
    public static bool IsBrokerNode(IReadOnlyList<string> argv) =>
        argv.Count > 1 && Path.GetFileName(argv[0]) == "dotnet" && argv.Skip(1).Any(a => Path.GetFileName(a) == "WsBroker.Broker.dll");

    private static Uri ParseUrl(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("ws" or "wss"))
            throw new LoadUsageException($"--url must be a ws:// or wss:// URL, not '{text}'");
        return uri;
    }

    private static string ParsePrefix(string text) =>
        text.StartsWith('/') && !text.EndsWith('/') ? text : throw new LoadUsageException($"--prefix must start with '/' and not end with '/', not '{text}'");

    private static string ReadToken(string path) =>
        File.Exists(path) ? File.ReadAllText(path).Trim() : throw new LoadUsageException($"--token-file: file not found: {path}");

    private static int Int(string name, string text, int min, int max) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max ? v
        : throw new LoadUsageException($"{name} must be a whole number from {min} to {max}, not '{text}'");

    /// <summary>"10s", "500ms", "2m", or plain seconds.</summary>
    public static TimeSpan Time(string name, string text, TimeSpan min, TimeSpan max)
    {
        TimeSpan? value = null;
        if (text.EndsWith("ms", StringComparison.Ordinal) && double.TryParse(text[..^2], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms)) value = TimeSpan.FromMilliseconds(ms);
        else if (text.EndsWith('s') && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var s)) value = TimeSpan.FromSeconds(s);
        else if (text.EndsWith('m') && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var m)) value = TimeSpan.FromMinutes(m);
        else if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var plain)) value = TimeSpan.FromSeconds(plain);
        if (value is not { } v || v < min || v > max) throw new LoadUsageException($"{name} must be a time from {min.TotalSeconds}s to {max.TotalSeconds}s like 10s or 500ms, not '{text}'");
        return v;
    }

    private static bool IsLoopback(Uri url) =>
        url.IsLoopback || (IPAddress.TryParse(url.Host, out var ip) && IPAddress.IsLoopback(ip));
}
