using System.Text.Json;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;

namespace WsBroker.Broker.Cluster;

/// <summary>
/// Cluster-wide presence (docs/design.md §8). Each node sends its own users' transitions as numbered deltas on the
/// backplane (in order with its messages), and a heartbeat every <c>Cluster:HeartbeatMs</c> with its epoch (new at each
/// start) and last delta number. Every node keeps each peer's set of online users: a delta that does not follow the last
/// one, an unknown epoch or a heartbeat ahead of what it holds makes it ask that peer for a snapshot. A peer not heard from
/// for <c>Cluster:NodeTimeoutMs</c> is gone, and its users go offline. A user is online while any node has them, and
/// <see cref="Changed"/> fires on every node for each cluster-wide transition (each node tells its own subscribers).
/// </summary>
public sealed partial class ClusterPresence : IPresence, IHostedService, IDisposable
{
    private const string Kind = "presence";
    private readonly Lock _gate = new();
    private readonly SessionRegistry _sessions;
    private readonly RabbitMqBackplane _backplane;
    private readonly ClusterOptions _options;
    private readonly int _nodeId;
    private readonly ILogger<ClusterPresence> _logger;
    private readonly long _epoch = Random.Shared.NextInt64(1, long.MaxValue);
    private readonly HashSet<string> _mine = new(StringComparer.Ordinal);
    private readonly Dictionary<int, Peer> _peers = [];
    private readonly Dictionary<string, int> _nodesOnline = new(StringComparer.Ordinal);   // user → nodes that have them
    private long _seq;
    private Timer? _timer;

    public ClusterPresence(SessionRegistry sessions, RabbitMqBackplane backplane, IOptions<ClusterOptions> options, IOptions<BrokerOptions> broker,
        ILogger<ClusterPresence> logger)
    {
        _sessions = sessions;
        _backplane = backplane;
        _options = options.Value;
        _nodeId = broker.Value.NodeId;
        _logger = logger;
        sessions.UserOnline += LocalChanged;
        sessions.UserOffline += LocalChanged;
        backplane.ControlReceived += OnControl;
    }

    public event Action<string, bool>? Changed;

    public bool IsOnline(string userId)
    {
        lock (_gate) return _nodesOnline.ContainsKey(userId);
    }

    /// <summary>Nodes heard from within <c>Cluster:NodeTimeoutMs</c>, this one included (tests, operations).</summary>
    public IReadOnlyList<int> Nodes
    {
        get
        {
            lock (_gate) return [_nodeId, .. _peers.Keys.Order()];
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _timer = new Timer(static state => ((ClusterPresence)state!).Tick(), this, 0, _options.HeartbeatMs);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();

    // A first or last local session. The registry raises these outside its lock, so two of them may arrive out of order:
    // the registry's state now is what counts, and a transition already recorded is not sent again.
    private void LocalChanged(string userId)
    {
        lock (_gate)
        {
            var online = _sessions.IsOnline(userId);
            if (online ? !_mine.Add(userId) : !_mine.Remove(userId)) return;
            Count(userId, online);
            Send(new Control { K = 'd', E = _epoch, S = ++_seq, U = userId, O = online });
        }
    }

    private void Tick()
    {
        var now = Environment.TickCount64;
        lock (_gate)
        {
            Send(new Control { K = 'h', E = _epoch, S = _seq });
            foreach (var (node, peer) in _peers.ToList())
            {
                if (now - peer.LastSeenMs > _options.NodeTimeoutMs)
                {
                    Log.NodeGone(_logger, node, peer.Users.Count, _options.NodeTimeoutMs);
                    Forget(node, peer);
                }
                else if (peer.AwaitingSinceMs > 0 && now - peer.AwaitingSinceMs > 2L * _options.HeartbeatMs)
                {
                    Ask(node, peer, now);                                  // the snapshot or the request was lost
                }
            }
        }
    }

    private void OnControl(int origin, SharedMessage message)
    {
        if (!message.Destination.AsSpan(RabbitMqBackplane.ControlPrefix.Length).SequenceEqual(Kind)) return;
        Control? control;
        try
        {
            control = JsonSerializer.Deserialize<Control>(message.Body);
        }
        catch (JsonException ex)
        {
            Log.BadControl(_logger, ex, origin);
            return;
        }
        if (control is null) return;
        var now = Environment.TickCount64;
        lock (_gate)
        {
            if (control.K == 'q')
            {
                if (control.T == _nodeId) Send(new Control { K = 's', E = _epoch, S = _seq, Users = [.. _mine] });
                return;
            }
            if (!_peers.TryGetValue(origin, out var peer) || peer.Epoch != control.E)
            {
                // A node seen for the first time, or restarted: whatever it had before is gone.
                if (peer is not null) Forget(origin, peer);
                if (peer is null) Log.NodeSeen(_logger, origin);
                _peers[origin] = peer = new Peer { Epoch = control.E, LastSeenMs = now };
                if (control.K != 's') Ask(origin, peer, now);
            }
            peer.LastSeenMs = now;
            switch (control.K)
            {
                case 's':
                    Replace(peer, control.Users ?? []);
                    peer.Seq = control.S;
                    peer.AwaitingSinceMs = 0;
                    break;
                case 'd' when peer.AwaitingSinceMs > 0 || control.S <= peer.Seq:
                    break;                                                 // the snapshot covers it, or already applied
                case 'd' when control.S == peer.Seq + 1 && control.U is { } user:
                    peer.Seq = control.S;
                    if (control.O ? peer.Users.Add(user) : peer.Users.Remove(user)) Count(user, control.O);
                    break;
                case 'd':
                case 'h' when control.S != peer.Seq && peer.AwaitingSinceMs == 0:
                    Ask(origin, peer, now);                                // missed some: start over from a snapshot
                    break;
            }
        }
    }

    private void Ask(int node, Peer peer, long now)
    {
        peer.AwaitingSinceMs = now;
        Send(new Control { K = 'q', T = node });
    }

    private void Replace(Peer peer, string[] users)
    {
        var fresh = new HashSet<string>(users, StringComparer.Ordinal);
        foreach (var gone in peer.Users.Where(u => !fresh.Contains(u)).ToList())
        {
            peer.Users.Remove(gone);
            Count(gone, online: false);
        }
        foreach (var user in fresh)
        {
            if (peer.Users.Add(user)) Count(user, online: true);
        }
    }

    private void Forget(int node, Peer peer)
    {
        _peers.Remove(node);
        foreach (var user in peer.Users) Count(user, online: false);
        peer.Users.Clear();
    }

    // One more or one fewer node has the user: raises Changed on the first and the last (under the lock, so in order;
    // the handler only queues notices).
    private void Count(string userId, bool online)
    {
        var nodes = _nodesOnline.GetValueOrDefault(userId) + (online ? 1 : -1);
        if (nodes > 0) _nodesOnline[userId] = nodes;
        else _nodesOnline.Remove(userId);
        if (online ? nodes == 1 : nodes == 0) Changed?.Invoke(userId, online);
    }

    private void Send(Control control) => _backplane.PublishControl(Kind, JsonSerializer.SerializeToUtf8Bytes(control));

    private sealed class Peer
    {
        public long Epoch;
        public long Seq;
        public long LastSeenMs;
        public long AwaitingSinceMs;                                       // a snapshot was asked for (0: none)
        public readonly HashSet<string> Users = new(StringComparer.Ordinal);
    }

    /// <summary>One control message: K is d(elta), h(eartbeat), q (snapshot request to node T) or s(napshot).</summary>
    private sealed class Control
    {
        public char K { get; set; }
        public long E { get; set; }
        public long S { get; set; }
        public int T { get; set; }
        public string? U { get; set; }
        public bool O { get; set; }
        public string[]? Users { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 710, Level = LogLevel.Information, Message = "cluster: node {NodeId} seen")]
        public static partial void NodeSeen(ILogger logger, int nodeId);

        [LoggerMessage(EventId = 711, Level = LogLevel.Warning, Message = "cluster: node {NodeId} not heard from for {TimeoutMs} ms: gone, its {Users} users offline")]
        public static partial void NodeGone(ILogger logger, int nodeId, int users, int timeoutMs);

        [LoggerMessage(EventId = 712, Level = LogLevel.Warning, Message = "cluster: a presence message from node {NodeId} did not read")]
        public static partial void BadControl(ILogger logger, Exception exception, int nodeId);
    }
}
