using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Routing;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>
/// The delivered status of chat messages: sessions report a message that reached its recipient (written under
/// <c>ack:auto</c>, ACKed otherwise); this stores <c>delivered_at</c> once, in batches, and tells the sender on
/// <c>/topic/seen/{senderId}</c> with <c>status:delivered</c>. Reports never block a session: past a bounded backlog they
/// are dropped (the status is then missing, never wrong).
/// </summary>
public sealed partial class ChatDeliveryTracker(IMessageStore messages, IBackplane backplane, ILogger<ChatDeliveryTracker> logger)
    : BackgroundService, IDeliveryObserver
{
    private const int MaxBacklog = 100_000;
    private const int MaxBatch = 500;
    // Reports are gathered this long after the first of a batch: one UPDATE per batch, not one per message (the
    // delivered status shares the database with the messages' own group commits, and SQLite has one writer).
    private static readonly TimeSpan s_gather = TimeSpan.FromMilliseconds(50);
    private readonly Channel<(long MessageId, string UserId)> _reports = Channel.CreateBounded<(long, string)>(
        new BoundedChannelOptions(MaxBacklog) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
    // The sender of messages this node delivered recently (a delivered report then needs no lookup). Bounded.
    private readonly ConcurrentDictionary<long, string> _senders = new();

    public bool Observes(Destination destination) => ChatDestination.Of(destination).Kind is ChatDestinationKind.Conversation
        or ChatDestinationKind.AdminConversations;

    public void Delivered(long messageId, string userId) => _reports.Writer.TryWrite((messageId, userId));

    /// <summary>Remembers who sent a message this node is about to deliver.</summary>
    internal void Sent(long messageId, string senderId)
    {
        if (_senders.Count >= MaxBacklog) _senders.Clear();
        _senders[messageId] = senderId;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<(long MessageId, string UserId)>(MaxBatch);
        try
        {
            while (await _reports.Reader.WaitToReadAsync(stoppingToken))
            {
                await Task.Delay(s_gather, stoppingToken);
                while (batch.Count < MaxBatch && _reports.Reader.TryRead(out var report)) batch.Add(report);
                try
                {
                    await StoreAndNotifyAsync(batch, stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.NotStored(logger, ex, batch.Count);          // best effort: the status stays unset, delivery is unaffected
                }
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    private async Task StoreAndNotifyAsync(List<(long MessageId, string UserId)> batch, CancellationToken cancellationToken)
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var group in batch.GroupBy(r => r.UserId, StringComparer.Ordinal))
        {
            var changed = await messages.MarkDeliveredAsync([.. group.Select(r => r.MessageId).Distinct()], group.Key, now, cancellationToken);
            foreach (var id in changed)
            {
                var sender = _senders.TryRemove(id, out var known) ? known : (await messages.FindAsync(id, cancellationToken))?.SenderId;
                if (sender is not null) Notify(id, sender, group.Key, now);
            }
        }
    }

    private void Notify(long messageId, string senderId, string readerId, DateTimeOffset at)
    {
        var deliveredAt = at.ToUnixTimeMilliseconds();
        var body = JsonSerializer.SerializeToUtf8Bytes(new
        {
            status = "delivered",
            reader = readerId,
            deliveredAt,
            messageIds = new[] { messageId.ToString(CultureInfo.InvariantCulture) },
        });
        backplane.Publish(SharedMessage.Create(messageId, ChatDestination.SeenPrefix + senderId,
        [
            new("status", "delivered"),
            new("reader", readerId),
            new("delivered-at", deliveredAt.ToString(CultureInfo.InvariantCulture)),
            new("content-type", "application/json"),
        ], body, readerId, senderId));
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 630, Level = LogLevel.Warning, Message = "delivered status of {Count} reports not stored")]
        public static partial void NotStored(ILogger logger, Exception exception, int count);
    }
}
