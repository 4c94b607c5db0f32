using System.Buffers;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using WsBroker.Broker.Hosting;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.UserSync;

namespace WsBroker.Broker.Cluster;

/// <summary>
/// The cluster backplane on RabbitMQ (docs/design.md §7). Every message is delivered to this node's subscribers at once
/// and queued for the other nodes; one sender loop drains the queue into batches (as many messages as waited while the
/// previous publish was handed over) and publishes each batch as one AMQP message to the topic exchange. Every node has
/// one exclusive queue bound to it, read by one consumer in order, so the messages of one node reach every other node in
/// the order it published them. A node's own batches come back to it and are dropped by their origin. The exclusive queue
/// is named after <c>Broker:NodeId</c>: a second node with the same id is refused at start.
/// </summary>
public sealed partial class RabbitMqBackplane : IBackplane, IHostedService, IAsyncDisposable
{
    private const string RoutingKey = "messages";
    private static readonly TimeSpan s_startWait = TimeSpan.FromSeconds(10);
    private readonly LocalDelivery _local;
    private readonly ClusterOptions _options;
    private readonly UserSyncOptions _bus;
    private readonly int _nodeId;
    private readonly BackplaneMetrics _metrics;
    private readonly ILogger<RabbitMqBackplane> _logger;
    private readonly IHostApplicationLifetime _lifetime;
    // Messages for the other nodes, and barriers (a TaskCompletionSource completed once everything before it was handed to
    // RabbitMQ, or dropped).
    private readonly Channel<object> _outgoing;
    private readonly CancellationTokenSource _stopping = new();
    private IConnection? _connection;
    private IChannel? _publishChannel;
    private IChannel? _consumeChannel;
    private readonly TaskCompletionSource<IConnection> _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _sender = Task.CompletedTask;
    private Task _connecting = Task.CompletedTask;

    public RabbitMqBackplane(LocalDelivery local, IOptions<ClusterOptions> options, IOptions<UserSyncOptions> bus, IOptions<BrokerOptions> broker,
        BackplaneMetrics metrics, ILogger<RabbitMqBackplane> logger, IHostApplicationLifetime lifetime)
    {
        _local = local;
        _options = options.Value;
        _bus = bus.Value;
        _nodeId = broker.Value.NodeId;
        _metrics = metrics;
        _logger = logger;
        _lifetime = lifetime;
        _outgoing = Channel.CreateBounded<object>(new BoundedChannelOptions(_options.MaxPendingMessages)
        {
            FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true, AllowSynchronousContinuations = false,
        });
    }

    /// <summary>The queue only this node reads; its name holds the node id, so a second node with that id is refused.</summary>
    public string QueueName => $"{_options.Exchange}.node.{_nodeId}";

    /// <summary>Completes with the connection once it is first made (it then recovers by itself): other cluster parts open
    /// their channels on it.</summary>
    public Task<IConnection> WhenConnected => _connected.Task;

    /// <summary>The routing key that reaches only this node's queue (answers to its requests).</summary>
    public static string NodeRoutingKey(int nodeId) => "node." + nodeId.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The AMQP type of a message sent to one node as the answer to a request (<see cref="Answered"/>).</summary>
    public const string AnswerType = "answer";

    /// <summary>An answer to one of this node's requests arrived: its correlation id and body (copied).</summary>
    public event Action<string, byte[]>? Answered;

    /// <summary>Connected to RabbitMQ with the queue consumed: messages reach the other nodes (readiness).</summary>
    public bool IsConnected => _connection is { IsOpen: true } && _publishChannel is { IsOpen: true } && _consumeChannel is { IsOpen: true };

    public void Publish(SharedMessage message)
    {
        _local.Deliver(message);
        if (!_outgoing.Writer.TryWrite(message)) _metrics.Dropped(1);
    }

    /// <summary>Destinations of the backplane's own control messages (never a client's: those start with '/').</summary>
    public const string ControlPrefix = "$cluster/";

    /// <summary>Queues a control message for the other nodes, in order with this node's messages (not delivered here).</summary>
    public void PublishControl(string kind, byte[] body)
    {
        if (!_outgoing.Writer.TryWrite(SharedMessage.Create(0, ControlPrefix + kind, [], body))) _metrics.Dropped(1);
    }

    /// <summary>A control message from another node (its origin and the message), on the one consumer thread, in that
    /// node's order.</summary>
    public event Action<int, SharedMessage>? ControlReceived;

    /// <summary>Completes once every message published before the call has been handed to RabbitMQ (or dropped): an owner
    /// acknowledges a request only after the messages it published for it are on their way, so a node that dies after its
    /// acknowledgement leaves nothing committed and unpublished.</summary>
    public Task PublishedAsync()
    {
        var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_outgoing.Writer.TryWrite(barrier)) barrier.TrySetResult();
        return barrier.Task;
    }

    /// <summary>Completes once this node has read everything that was in its queue when the call was made (a marker sent
    /// to its own queue came back): a node taking over an administrator's conversations first receives what the previous
    /// owner published. Completes at once while RabbitMQ is unreachable (there is nothing to wait for).</summary>
    public Task ReceivedAllAsync()
    {
        var marker = new SyncMarker(Interlocked.Increment(ref _nextSync).ToString(System.Globalization.CultureInfo.InvariantCulture));
        _syncs[marker.Id] = marker.Done;
        if (!_outgoing.Writer.TryWrite(marker)) marker.Done.TrySetResult();
        return marker.Done.Task;
    }

    private const string SyncType = "sync";
    private long _nextSync;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource> _syncs = new(StringComparer.Ordinal);

    private sealed record SyncMarker(string Id)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Always true: another node may have subscribers this one does not know of.</summary>
    public bool HasSubscribers(string destination) => true;

    /// <summary>Connects, declares the exchange and this node's queue, and starts the sender. Waits up to 10 s for
    /// RabbitMQ: a node id already in use fails the start; RabbitMQ out of reach only delays the backplane (the node serves
    /// its own clients and reports not ready until it connects).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _sender = Task.Run(SendLoopAsync, CancellationToken.None);
        _connecting = Task.Run(ConnectLoopAsync, CancellationToken.None);
        var first = await Task.WhenAny(_connecting, Task.Delay(s_startWait, cancellationToken)).ConfigureAwait(false);
        if (first == _connecting) await _connecting.ConfigureAwait(false);    // a refused node id throws here
        else
        {
            Volatile.Write(ref _servingWithout, true);                      // a late first connection is a gap too
            Log.StillConnecting(_logger, _bus.Host, _bus.Port);
        }
    }

    private async Task ConnectLoopAsync()
    {
        var factory = new ConnectionFactory
        {
            HostName = _bus.Host, Port = _bus.Port, VirtualHost = _bus.VirtualHost, UserName = _bus.Username, Password = _bus.Password,
            ClientProvidedName = QueueName,                                  // named after its queue: which cluster, which node
            AutomaticRecoveryEnabled = true, TopologyRecoveryEnabled = true, NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
            RequestedHeartbeat = TimeSpan.FromSeconds(10),
        };
        for (var attempt = 0; !_stopping.IsCancellationRequested; attempt++)
        {
            try
            {
                await ConnectAsync(factory, resumed: () => attempt > 0 || Volatile.Read(ref _servingWithout), _stopping.Token).ConfigureAwait(false);
                Log.Connected(_logger, _nodeId, QueueName);
                return;
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.ResourceLocked)
            {
                await CloseAsync().ConfigureAwait(false);
                var problem = $"Broker:NodeId {_nodeId} is already in use by another node of this cluster (its queue {QueueName} is held)";
                Log.NodeIdInUse(_logger, _nodeId, QueueName);
                if (_lifetime.ApplicationStarted.IsCancellationRequested)
                {
                    Environment.ExitCode = 1;
                    _lifetime.StopApplication();
                }
                throw new BrokerConfigurationException([problem]);
            }
            catch (Exception ex) when (!_stopping.IsCancellationRequested && ex is BrokerUnreachableException or OperationInterruptedException
                or AlreadyClosedException or IOException or System.Net.Sockets.SocketException or TimeoutException)
            {
                await CloseAsync().ConfigureAwait(false);
                if (attempt == 0) Log.Unreachable(_logger, ex, _bus.Host, _bus.Port);
                await Task.Delay(Math.Min(5000, 250 << Math.Min(attempt, 5)), _stopping.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>Raised when this node's queue is back after the connection was lost (topology recovery has declared and
    /// bound it again), or bound after a first connection that took more than one attempt: whatever the other nodes
    /// published meanwhile did not reach this node. Raised before anything is consumed again (before the first consumer of
    /// the connection is recovered, or before the first consume), so a handler sees nothing from after the gap first.</summary>
    public event Action? Resumed;

    // 1 while the connection is down and Resumed has not been raised for it yet.
    private int _gapOpen;
    // The start went on without the backplane: the node serves its own clients before its first connection.
    private bool _servingWithout;

    private void RaiseResumed()
    {
        if (Interlocked.Exchange(ref _gapOpen, 0) == 0) return;
        Log.Recovered(_logger, _nodeId);
        // Each handler on its own: RabbitMQ.Client would swallow an exception here, and the handlers after it would not run.
        foreach (var handler in Resumed?.GetInvocationList() ?? [])
        {
            try
            {
                ((Action)handler)();
            }
            catch (Exception ex)
            {
                Log.ResumedHandlerFailed(_logger, ex);
            }
        }
    }

    // `resumed` is asked once the queue is bound, just before the first consume: true when sessions may have been served
    // without the backplane (an earlier attempt failed, or the start went on without waiting for this one).
    private async Task ConnectAsync(ConnectionFactory factory, Func<bool> resumed, CancellationToken cancellationToken)
    {
        var connection = _connection = await factory.CreateConnectionAsync(cancellationToken).ConfigureAwait(false);
        connection.ConnectionShutdownAsync += (_, _) =>
        {
            Volatile.Write(ref _gapOpen, 1);
            return Task.CompletedTask;
        };
        // Every consumer of this connection (this queue's, the chat shards') is recovered after the queues and bindings and
        // before RecoverySucceeded; the first one raises Resumed, so nothing from after the gap is delivered before it.
        connection.RecoveringConsumerAsync += (_, _) =>
        {
            RaiseResumed();
            return Task.CompletedTask;
        };
        connection.RecoverySucceededAsync += (_, _) =>
        {
            RaiseResumed();
            return Task.CompletedTask;
        };
        var publish = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        // Declared by every node (again after a RabbitMQ restart, by topology recovery); it goes when the last node's queue
        // does, so nothing of a cluster outlives it.
        await publish.ExchangeDeclareAsync(_options.Exchange, ExchangeType.Topic, durable: false, autoDelete: true, cancellationToken: cancellationToken).ConfigureAwait(false);
        var consume = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        await consume.QueueDeclareAsync(QueueName, durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken).ConfigureAwait(false);
        await consume.QueueBindAsync(QueueName, _options.Exchange, RoutingKey, cancellationToken: cancellationToken).ConfigureAwait(false);
        await consume.QueueBindAsync(QueueName, _options.Exchange, NodeRoutingKey(_nodeId), cancellationToken: cancellationToken).ConfigureAwait(false);
        if (resumed())
        {
            Volatile.Write(ref _gapOpen, 1);
            RaiseResumed();                                          // the other nodes published meanwhile
        }
        var consumer = new AsyncEventingBasicConsumer(consume);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            var type = delivery.BasicProperties.Type;
            if (type == AnswerType)
            {
                if (delivery.BasicProperties.CorrelationId is { } correlation) Answered?.Invoke(correlation, delivery.Body.ToArray());
            }
            else if (type == SyncType)
            {
                if (delivery.BasicProperties.CorrelationId is { } id && _syncs.TryRemove(id, out var done)) done.TrySetResult();
            }
            else Receive(delivery.Body.Span);
            return Task.CompletedTask;
        };
        await consume.BasicConsumeAsync(QueueName, autoAck: true, consumer, cancellationToken).ConfigureAwait(false);
        _consumeChannel = consume;
        _publishChannel = publish;
        _connected.TrySetResult(connection);
    }

    private void Receive(ReadOnlySpan<byte> batch)
    {
        if (!BackplaneBatch.TryReadOrigin(batch, out var origin))
        {
            Log.BadBatch(_logger, batch.Length);
            return;
        }
        if (origin == _nodeId) return;                                // our own batch, delivered here when published
        var count = 0;
        if (!BackplaneBatch.TryRead(batch, message =>
            {
                count++;
                if (message.Destination.StartsWith(ControlPrefix, StringComparison.Ordinal)) ControlReceived?.Invoke(origin, message);
                else _local.DeliverFromBackplane(message, origin);
            }))
            Log.BadBatch(_logger, batch.Length);
        _metrics.Received(count);
    }

    private async Task SendLoopAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        var barriers = new List<TaskCompletionSource>();
        var syncs = new List<SyncMarker>();
        var reader = _outgoing.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stopping.Token).ConfigureAwait(false))
            {
                buffer.ResetWrittenCount();
                BackplaneBatch.WriteHeader(buffer, _nodeId);
                var count = 0;
                while (count < _options.MaxBatchMessages && buffer.WrittenCount < _options.MaxBatchBytes && reader.TryRead(out var item))
                {
                    if (item is SharedMessage message)
                    {
                        BackplaneBatch.Append(buffer, message);
                        count++;
                    }
                    else if (item is SyncMarker marker) syncs.Add(marker);
                    else barriers.Add((TaskCompletionSource)item);
                }
                if (count > 0) await PublishBatchAsync(buffer, count).ConfigureAwait(false);
                foreach (var marker in syncs) await PublishSyncAsync(marker).ConfigureAwait(false);
                syncs.Clear();
                foreach (var barrier in barriers) barrier.TrySetResult();
                barriers.Clear();
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var barrier in barriers) barrier.TrySetResult();
            foreach (var marker in syncs) marker.Done.TrySetResult();
            while (reader.TryRead(out var item))
            {
                (item as TaskCompletionSource)?.TrySetResult();
                (item as SyncMarker)?.Done.TrySetResult();
            }
        }
    }

    private async Task PublishSyncAsync(SyncMarker marker)
    {
        var channel = _publishChannel;
        try
        {
            if (channel is { IsOpen: true })
            {
                var properties = new BasicProperties { Type = SyncType, CorrelationId = marker.Id };
                await channel.BasicPublishAsync(_options.Exchange, NodeRoutingKey(_nodeId), mandatory: false, properties, ReadOnlyMemory<byte>.Empty, _stopping.Token).ConfigureAwait(false);
                _ = GiveUpLaterAsync(marker);
                return;
            }
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException)
        {
            Log.PublishFailed(_logger, ex, 0);
        }
        _syncs.TryRemove(marker.Id, out _);
        marker.Done.TrySetResult();                                     // not connected: nothing to wait for
    }

    // A marker lost with the connection must not hold its waiter for ever: after 5 s it counts as come back.
    private async Task GiveUpLaterAsync(SyncMarker marker)
    {
        await Task.WhenAny(marker.Done.Task, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        _syncs.TryRemove(marker.Id, out _);
        marker.Done.TrySetResult();
    }

    private async Task PublishBatchAsync(ArrayBufferWriter<byte> buffer, int count)
    {
        var channel = _publishChannel;
        if (channel is not { IsOpen: true })
        {
            _metrics.Dropped(count);
            return;
        }
        try
        {
            await channel.BasicPublishAsync(_options.Exchange, RoutingKey, buffer.WrittenMemory, _stopping.Token).ConfigureAwait(false);
            _metrics.Published(count);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException)
        {
            _metrics.Dropped(count);
            Log.PublishFailed(_logger, ex, count);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _outgoing.Writer.TryComplete();
        // What was published before the stop still goes out (bounded by the host's shutdown time).
        await _sender.WaitAsync(TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_sender, _connecting).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await CloseAsync().ConfigureAwait(false);
    }

    private async Task CloseAsync()
    {
        var connection = Interlocked.Exchange(ref _connection, null);
        _publishChannel = null;
        _consumeChannel = null;
        if (connection is null) return;
        try
        {
            await connection.CloseAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException)
        {
            // best-effort: it is going away either way
        }
        connection.Dispose();
    }

    // The token source is not disposed: the loops may still observe it while the host tears down after a failed start.
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await CloseAsync().ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "cluster backplane connected: node {NodeId}, queue {Queue}")]
        public static partial void Connected(ILogger logger, int nodeId, string queue);

        [LoggerMessage(EventId = 701, Level = LogLevel.Warning, Message = "cluster backplane: RabbitMQ at {Host}:{Port} unreachable, retrying (this node serves its own clients only meanwhile)")]
        public static partial void Unreachable(ILogger logger, Exception exception, string host, int port);

        [LoggerMessage(EventId = 702, Level = LogLevel.Warning, Message = "cluster backplane: still connecting to RabbitMQ at {Host}:{Port}; starting without it (not ready until it connects)")]
        public static partial void StillConnecting(ILogger logger, string host, int port);

        [LoggerMessage(EventId = 703, Level = LogLevel.Critical, Message = "Broker:NodeId {NodeId} is already in use by another node (queue {Queue} is held): this node stops")]
        public static partial void NodeIdInUse(ILogger logger, int nodeId, string queue);

        [LoggerMessage(EventId = 704, Level = LogLevel.Warning, Message = "cluster backplane: a batch of {Bytes} bytes did not read; dropped")]
        public static partial void BadBatch(ILogger logger, int bytes);

        [LoggerMessage(EventId = 706, Level = LogLevel.Warning, Message = "cluster backplane: node {NodeId} reconnected to RabbitMQ; messages other nodes published meanwhile may not have reached it")]
        public static partial void Recovered(ILogger logger, int nodeId);

        [LoggerMessage(EventId = 707, Level = LogLevel.Error, Message = "cluster backplane: a handler of the backplane's return failed")]
        public static partial void ResumedHandlerFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 705, Level = LogLevel.Warning, Message = "cluster backplane: publishing {Count} messages failed; they reached this node only")]
        public static partial void PublishFailed(ILogger logger, Exception exception, int count);
    }
}
