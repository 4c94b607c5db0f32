using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Cluster;

/// <summary>
/// Work that one node at a time must do for a shard of keys, asked for by any node (docs/design.md §8). Each shard is a
/// RabbitMQ queue with single active consumer: every node that registered a handler consumes every shard, RabbitMQ lets
/// one of them have each, and hands a shard to another node when its owner goes (unacknowledged requests are given again).
/// A request carries the asking node and a correlation id; the owner's answer comes back to the asker's own queue through
/// the cluster exchange. Requests leave in the order they are made (one sender loop).
/// </summary>
public sealed partial class ShardRequests : IHostedService
{
    private readonly RabbitMqBackplane _backplane;
    private readonly ClusterOptions _options;
    private readonly int _nodeId;
    private readonly ILogger<ShardRequests> _logger;
    private readonly BackplaneMetrics _metrics;
    private volatile bool _ready;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<byte[]>> _waiting = new(StringComparer.Ordinal);
    private readonly Channel<(int Shard, string Id, byte[] Body)> _requests = Channel.CreateUnbounded<(int, string, byte[])>(
        new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _publishing = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private Func<ShardRequest, Task>? _handler;
    private IChannel? _publish;
    private Task _running = Task.CompletedTask;
    private long _next;

    public ShardRequests(RabbitMqBackplane backplane, IOptions<ClusterOptions> options, IOptions<BrokerOptions> broker, BackplaneMetrics metrics,
        ILogger<ShardRequests> logger)
    {
        _backplane = backplane;
        _metrics = metrics;
        _options = options.Value;
        _nodeId = broker.Value.NodeId;
        _logger = logger;
        backplane.Answered += OnAnswered;
    }

    /// <summary>Raised when this node may have lost shards it owned (its connection was recovered, or a consumer was
    /// cancelled): whatever it remembered as an owner must be learned again.</summary>
    public event Action? OwnershipReset;

    /// <summary>Requests can be sent, and (with a handler) every shard is consumed here: part of readiness.</summary>
    public bool IsReady => _ready;

    public string ShardQueue(int shard) => $"{_options.Exchange}.shard.{shard.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The shard of <paramref name="key"/>: the same on every node (FNV-1a of the UTF-16 code units).</summary>
    public int ShardOf(string key)
    {
        var hash = 2166136261u;
        foreach (var c in key) hash = (hash ^ c) * 16777619u;
        return (int)(hash % (uint)_options.ChatShards);
    }

    /// <summary>Makes this node a candidate owner of every shard: <paramref name="handler"/> gets each request this node
    /// owns and must answer it (<see cref="ShardRequest.AnswerAsync"/>). Call before the host starts.</summary>
    public void Handle(Func<ShardRequest, Task> handler) => _handler = handler;

    /// <summary>Asks the owner of <paramref name="shard"/>; completes with its answer. <see cref="TimeoutException"/> when
    /// none comes within <c>Cluster:RequestTimeoutMs</c> (the owner died with it, or RabbitMQ is unreachable).</summary>
    public async Task<byte[]> RequestAsync(int shard, byte[] body)
    {
        var id = _nodeId.ToString(CultureInfo.InvariantCulture) + "-" + Interlocked.Increment(ref _next).ToString(CultureInfo.InvariantCulture);
        var answer = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[id] = answer;
        _requests.Writer.TryWrite((shard, id, body));
        try
        {
            return await answer.Task.WaitAsync(TimeSpan.FromMilliseconds(_options.RequestTimeoutMs)).ConfigureAwait(false);
        }
        finally
        {
            _waiting.TryRemove(id, out _);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _running = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _running.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunAsync()
    {
        IConnection connection;
        try
        {
            connection = await _backplane.WhenConnected.WaitAsync(_stopping.Token).ConfigureAwait(false);
            _publish = await connection.CreateChannelAsync(cancellationToken: _stopping.Token).ConfigureAwait(false);
            connection.RecoverySucceededAsync += (_, _) =>
            {
                OwnershipReset?.Invoke();
                return Task.CompletedTask;
            };
            if (_handler is { } handler) await ConsumeShardsAsync(connection, handler).ConfigureAwait(false);
            _ready = true;
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            return;
        }
        await SendLoopAsync().ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task ConsumeShardsAsync(IConnection connection, Func<ShardRequest, Task> handler)
    {
        var channel = await connection.CreateChannelAsync(cancellationToken: _stopping.Token).ConfigureAwait(false);
        await channel.BasicQosAsync(0, 256, global: false, _stopping.Token).ConfigureAwait(false);
        var arguments = new Dictionary<string, object?>
        {
            ["x-single-active-consumer"] = true,
            ["x-expires"] = 60_000,                                         // gone a minute after the last node of the cluster
        };
        for (var shard = 0; shard < _options.ChatShards; shard++)
        {
            var queue = ShardQueue(shard);
            await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false, arguments, cancellationToken: _stopping.Token).ConfigureAwait(false);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += async (_, delivery) =>
            {
                _metrics.RequestHandled();
                var request = new ShardRequest(this, channel, delivery.DeliveryTag, delivery.Body.ToArray(),
                    delivery.BasicProperties.ReplyTo, delivery.BasicProperties.CorrelationId, delivery.Redelivered);
                try
                {
                    await handler(request).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    // The handler must answer; one that failed leaves the request to be given again after a reconnect.
                    Log.HandlerFailed(_logger, ex, queue);
                }
            };
            consumer.UnregisteredAsync += (_, _) =>
            {
                OwnershipReset?.Invoke();
                return Task.CompletedTask;
            };
            await channel.BasicConsumeAsync(queue, autoAck: false, consumer, _stopping.Token).ConfigureAwait(false);
        }
    }

    private async Task SendLoopAsync()
    {
        var reader = _requests.Reader;
        while (await reader.WaitToReadAsync(_stopping.Token).ConfigureAwait(false))
        {
            while (reader.TryRead(out var request))
            {
                var properties = new BasicProperties { ReplyTo = _nodeId.ToString(CultureInfo.InvariantCulture), CorrelationId = request.Id };
                try
                {
                    await PublishAsync(string.Empty, ShardQueue(request.Shard), properties, request.Body).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException)
                {
                    // RabbitMQ is away: the asker hears it now instead of at its timeout.
                    if (_waiting.TryRemove(request.Id, out var waiting)) waiting.TrySetException(new TimeoutException("the cluster is unreachable", ex));
                }
            }
        }
    }

    private async Task PublishAsync(string exchange, string routingKey, BasicProperties properties, ReadOnlyMemory<byte> body)
    {
        var channel = _publish ?? throw new AlreadyClosedException(new ShutdownEventArgs(ShutdownInitiator.Application, 0, "not connected"));
        await _publishing.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            await channel.BasicPublishAsync(exchange, routingKey, mandatory: false, properties, body, _stopping.Token).ConfigureAwait(false);
        }
        finally
        {
            _publishing.Release();
        }
    }

    internal async Task AnswerAsync(IChannel channel, ulong deliveryTag, string? replyTo, string? correlationId, byte[] answer)
    {
        try
        {
            if (int.TryParse(replyTo, NumberStyles.None, CultureInfo.InvariantCulture, out var asker) && correlationId is not null)
            {
                var properties = new BasicProperties { Type = RabbitMqBackplane.AnswerType, CorrelationId = correlationId };
                await PublishAsync(_options.Exchange, RabbitMqBackplane.NodeRoutingKey(asker), properties, answer).ConfigureAwait(false);
            }
            await channel.BasicAckAsync(deliveryTag, multiple: false, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // Not acknowledged: the request is given again (to this node or the next owner); the asker may resend.
            Log.AnswerFailed(_logger, ex, correlationId);
        }
    }

    private void OnAnswered(string correlationId, byte[] body)
    {
        if (_waiting.TryRemove(correlationId, out var waiting)) waiting.TrySetResult(body);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 720, Level = LogLevel.Error, Message = "cluster: the handler of a request on {Queue} failed")]
        public static partial void HandlerFailed(ILogger logger, Exception exception, string queue);

        [LoggerMessage(EventId = 721, Level = LogLevel.Warning, Message = "cluster: the answer to request {CorrelationId} was not sent; the request will be given again")]
        public static partial void AnswerFailed(ILogger logger, Exception exception, string? correlationId);
    }
}

/// <summary>One request this node owns: its body, and the one answer it owes (sent to the asker, then acknowledged).</summary>
public sealed class ShardRequest
{
    private readonly ShardRequests _owner;
    private readonly IChannel _channel;
    private readonly ulong _deliveryTag;
    private readonly string? _replyTo;
    private readonly string? _correlationId;
    private int _answered;

    internal ShardRequest(ShardRequests owner, IChannel channel, ulong deliveryTag, byte[] body, string? replyTo, string? correlationId, bool redelivered)
    {
        _owner = owner;
        _channel = channel;
        _deliveryTag = deliveryTag;
        Body = body;
        _replyTo = replyTo;
        _correlationId = correlationId;
        Redelivered = redelivered;
    }

    public byte[] Body { get; }

    /// <summary>Given before, to this node or another owner that did not acknowledge it.</summary>
    public bool Redelivered { get; }

    /// <summary>Sends the answer to the asker and acknowledges the request (once; later calls do nothing).</summary>
    public Task AnswerAsync(byte[] answer) =>
        Interlocked.Exchange(ref _answered, 1) == 0 ? _owner.AnswerAsync(_channel, _deliveryTag, _replyTo, _correlationId, answer) : Task.CompletedTask;
}
