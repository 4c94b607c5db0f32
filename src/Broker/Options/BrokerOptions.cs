using WsBroker.Protocol;

namespace WsBroker.Broker.Options;

/// <summary>Engine settings, section <c>Broker</c> (env <c>Broker__MaxFrameBytes</c> …). Defaults are docs/design.md §3's.</summary>
public sealed class BrokerOptions
{
    public const string Section = "Broker";

    /// <summary>The longest any of the times may be: a day. Twice it still fits the timers' <c>int</c> arithmetic, and
    /// nothing a connection waits for is meant to take longer.</summary>
    public const int MaxTimeMs = 86_400_000;

    /// <summary>This node's id (0..1023), part of every message id so ids are unique across nodes.</summary>
    public int NodeId { get; set; }
    /// <summary>Shifts the clock of this node's message ids by this many milliseconds (tests of clock skew between the nodes
    /// of a cluster; leave it 0).</summary>
    public int ClockOffsetMs { get; set; }
    public int MaxFrameBytes { get; set; } = 64 * 1024;
    public int MaxHeaderCount { get; set; } = 64;
    public int MaxHeaderLineBytes { get; set; } = 8 * 1024;
    public int MaxBodyBytes { get; set; } = 64 * 1024;
    public int MaxSubscriptionsPerSession { get; set; } = 256;
    /// <summary>High-water mark of one connection's outbound queue, in frames: a publisher that queues into it above this
    /// stops reading its own socket until the queue is back under half of it (credit flow).</summary>
    public int OutboundQueueFrames { get; set; } = 1024;
    /// <summary>High-water mark of one connection's outbound queue, in bytes (see <see cref="OutboundQueueFrames"/>).</summary>
    public int OutboundQueueBytes { get; set; } = 1024 * 1024;
    /// <summary>Hard cap of one connection's outbound queue, in frames: reaching it makes the connection a slow consumer.</summary>
    public int OutboundQueueHardCapFrames { get; set; } = 16 * 1024;
    /// <summary>Hard cap of one connection's outbound queue, in bytes: reaching it makes the connection a slow consumer.</summary>
    public int OutboundQueueHardCapBytes { get; set; } = 16 * 1024 * 1024;
    /// <summary>How long a connection with bytes to send may make no write progress (no socket send completes) before it is
    /// cut as a slow consumer; a publisher waiting for its queue to drain is released then too.</summary>
    public int SlowConsumerMs { get; set; } = 5_000;
    /// <summary>How long a connection's socket send may make no progress before it stops holding its publishers: they read
    /// on, and its queue grows until <see cref="SlowConsumerMs"/> or the hard cap cuts it (a paused reader does not slow
    /// everyone else down). It holds them again once a send completes. At or above <see cref="SlowConsumerMs"/>: publishers
    /// wait until the cut.</summary>
    public int FlowControlStallMs { get; set; } = 200;
    /// <summary>Most messages a session may hold unacknowledged (client ack modes) before it is a slow consumer.</summary>
    public int MaxUnacked { get; set; } = 1024;
    /// <summary>Most open transactions per session and frames per transaction.</summary>
    public int MaxTransactions { get; set; } = 16;
    public int MaxFramesPerTransaction { get; set; } = 1024;
    /// <summary>The server's heart-beat offer: it can send every <see cref="HeartBeatSendMs"/>, wants one every <see cref="HeartBeatReceiveMs"/>.</summary>
    public int HeartBeatSendMs { get; set; } = 10_000;
    public int HeartBeatReceiveMs { get; set; } = 10_000;
    /// <summary>How long a client may take from upgrade to CONNECT.</summary>
    public int ConnectTimeoutMs { get; set; } = 10_000;
    /// <summary>Longest a frame may stay half-sent (its first bytes arrived, its end not) before the connection is closed,
    /// whatever the heart-beats: a client that announces a content-length and goes silent holds nothing for long.</summary>
    public int PartialFrameTimeoutMs { get; set; } = 30_000;
    /// <summary>How long shutdown waits for connections to flush and close.</summary>
    public int ShutdownTimeoutMs { get; set; } = 5_000;
    /// <summary>Which WebSocket implementation carries the sessions: <see cref="BrokerTransport.Pipeline"/> (Kestrel's
    /// connection layer) or <see cref="BrokerTransport.AspNetCore"/> (ASP.NET Core's WebSocket middleware).</summary>
    public BrokerTransport Transport { get; set; } = BrokerTransport.Pipeline;
    /// <summary>Kestrel runs what follows a socket's read or write on the thread that completed it, instead of queueing it
    /// to the thread pool (<c>SocketTransportOptions.UnsafePreferInlineScheduling</c>): a flush sends at once, and a
    /// received frame is handled without another hop. The broker's handlers never block, which is what the setting asks.</summary>
    public bool InlineScheduling { get; set; } = true;
    /// <summary>The socket of an upgraded WebSocket connection (<see cref="BrokerTransport.Pipeline"/>) completes its reads and
    /// writes on the runtime's socket event thread: a heart-beat costs no thread-pool wake-up. Every frame that is not a
    /// heart-beat is handed to the thread pool before it is handled (<c>InlineSocketCompletions</c>).</summary>
    public bool InlineSocketCompletions { get; set; } = true;
    /// <summary>Most open WebSocket connections; beyond it upgrades get 503. 0: derived from the open-file limit
    /// (<c>ConnectionLimits</c>), which is what a node can hold without running out of descriptors.</summary>
    public int MaxConnections { get; set; }
    /// <summary>Serve <c>POST /debug/gc</c> (forces a full garbage collection and reports the managed heap): for memory
    /// measurements only, never in production.</summary>
    public bool DiagnosticsEndpoints { get; set; }

    public string ServerName { get; set; } = "WsBroker/" + (typeof(BrokerOptions).Assembly.GetName().Version?.ToString(3) ?? "1.0.0");

    internal StompLimits ToLimits() => new()
    {
        MaxFrameBytes = MaxFrameBytes,
        MaxHeaderCount = MaxHeaderCount,
        MaxHeaderLineBytes = MaxHeaderLineBytes,
        MaxBodyBytes = MaxBodyBytes,
    };

    /// <summary>Problems with these settings, each naming its option.</summary>
    public IEnumerable<string> Validate()
    {
        if (NodeId is < 0 or > 1023) yield return "Broker:NodeId must be between 0 and 1023";
        if (MaxFrameBytes < 256) yield return "Broker:MaxFrameBytes must be at least 256";
        if (MaxHeaderCount < 4) yield return "Broker:MaxHeaderCount must be at least 4";
        if (MaxHeaderLineBytes < 64) yield return "Broker:MaxHeaderLineBytes must be at least 64";
        if (MaxBodyBytes < 0) yield return "Broker:MaxBodyBytes must not be negative";
        if (MaxSubscriptionsPerSession < 1) yield return "Broker:MaxSubscriptionsPerSession must be at least 1";
        if (OutboundQueueFrames < 2) yield return "Broker:OutboundQueueFrames must be at least 2";
        if (OutboundQueueBytes < MaxFrameBytes) yield return "Broker:OutboundQueueBytes must be at least Broker:MaxFrameBytes";
        if (OutboundQueueHardCapFrames < OutboundQueueFrames) yield return "Broker:OutboundQueueHardCapFrames must be at least Broker:OutboundQueueFrames";
        if (OutboundQueueHardCapBytes < OutboundQueueBytes) yield return "Broker:OutboundQueueHardCapBytes must be at least Broker:OutboundQueueBytes";
        if (SlowConsumerMs is < 100 or > MaxTimeMs) yield return $"Broker:SlowConsumerMs must be between 100 and {MaxTimeMs}";
        if (FlowControlStallMs is < 10 or > MaxTimeMs) yield return $"Broker:FlowControlStallMs must be between 10 and {MaxTimeMs}";
        if (MaxUnacked < 1) yield return "Broker:MaxUnacked must be at least 1";
        if (MaxTransactions < 1) yield return "Broker:MaxTransactions must be at least 1";
        if (MaxFramesPerTransaction < 1) yield return "Broker:MaxFramesPerTransaction must be at least 1";
        // Beats more often than every 100 ms would have the scanner pass over every session more than 40 times a second.
        if (HeartBeatSendMs is not 0 and (< 100 or > MaxTimeMs)) yield return $"Broker:HeartBeatSendMs must be 0 (off) or between 100 and {MaxTimeMs}";
        if (HeartBeatReceiveMs is not 0 and (< 100 or > MaxTimeMs)) yield return $"Broker:HeartBeatReceiveMs must be 0 (off) or between 100 and {MaxTimeMs}";
        if (ConnectTimeoutMs is < 100 or > MaxTimeMs) yield return $"Broker:ConnectTimeoutMs must be between 100 and {MaxTimeMs}";
        if (PartialFrameTimeoutMs is < 100 or > MaxTimeMs) yield return $"Broker:PartialFrameTimeoutMs must be between 100 and {MaxTimeMs}";
        if (ShutdownTimeoutMs is < 0 or > MaxTimeMs) yield return $"Broker:ShutdownTimeoutMs must be between 0 and {MaxTimeMs}";
        if (MaxConnections is < 0 or > 10_000_000) yield return "Broker:MaxConnections must be between 0 and 10000000";
        if (!Enum.IsDefined(Transport)) yield return $"Broker:Transport must be Pipeline or AspNetCore, not '{Transport}'";
    }
}

