namespace WsBroker.Broker.Cluster;

/// <summary>Section <c>Cluster</c>: several nodes behind one address, RabbitMQ (the <c>Bus</c> connection) as the
/// backplane. On only with <c>Bus:Transport=RabbitMq</c> and <c>Storage:Provider=MySql</c> (one shared database).</summary>
public sealed class ClusterOptions
{
    public const string Section = "Cluster";

    public bool Enabled { get; set; }
    /// <summary>The topic exchange every node publishes its batches to.</summary>
    public string Exchange { get; set; } = "wsbroker.cluster";
    /// <summary>Most messages in one AMQP publish (a batch goes out as soon as the previous one is handed over).</summary>
    public int MaxBatchMessages { get; set; } = 512;
    /// <summary>Most bytes in one AMQP publish (a single larger message goes alone).</summary>
    public int MaxBatchBytes { get; set; } = 256 * 1024;
    /// <summary>Messages waiting for the backplane: past it, or while RabbitMQ is unreachable, a message reaches this
    /// node's subscribers only (counted; chat clients recover it with <c>since:</c>).</summary>
    public int MaxPendingMessages { get; set; } = 100_000;
    /// <summary>How often a node tells the others it is alive (with where its presence changes stand).</summary>
    public int HeartbeatMs { get; set; } = 1000;
    /// <summary>A node not heard from for this long is gone: its users go offline on every other node.</summary>
    public int NodeTimeoutMs { get; set; } = 5000;
    /// <summary>Shards of the administrators' conversations: each shard is owned by one node at a time (RabbitMQ's
    /// single active consumer), which stores and publishes its messages in order. Every node must use the same number.</summary>
    public int ChatShards { get; set; } = 16;
    /// <summary>How long a node waits for the owner of a conversation to answer a stored SEND.</summary>
    public int RequestTimeoutMs { get; set; } = 10_000;

    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(Exchange) || Exchange.Length > 127) yield return "Cluster:Exchange must be 1-127 characters";
        if (MaxBatchMessages is < 1 or > 100_000) yield return "Cluster:MaxBatchMessages must be between 1 and 100000";
        if (MaxBatchBytes is < 1024 or > 64 * 1024 * 1024) yield return "Cluster:MaxBatchBytes must be between 1024 and 67108864";
        if (MaxPendingMessages < MaxBatchMessages) yield return "Cluster:MaxPendingMessages must be at least Cluster:MaxBatchMessages";
        if (HeartbeatMs is < 50 or > 60_000) yield return "Cluster:HeartbeatMs must be between 50 and 60000";
        if (NodeTimeoutMs < 2 * HeartbeatMs) yield return "Cluster:NodeTimeoutMs must be at least twice Cluster:HeartbeatMs";
        if (ChatShards is < 1 or > 1024) yield return "Cluster:ChatShards must be between 1 and 1024";
        if (RequestTimeoutMs is < 100 or > 300_000) yield return "Cluster:RequestTimeoutMs must be between 100 and 300000";
    }
}
