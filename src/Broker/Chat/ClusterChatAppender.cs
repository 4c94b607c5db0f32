using System.Collections.Concurrent;
using System.Text.Json;
using WsBroker.Broker.Cluster;
using WsBroker.Broker.Routing;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>
/// Cluster mode (docs/design.md §8 "Order across nodes"): an administrator's conversations are owned by one node at a time
/// (the owner of their shard, <see cref="ShardRequests"/>). Every node sends its stored SENDs there; the owner appends them
/// through its own store, so ids, commits and publishes follow one order per administrator, as on one node. A node that
/// becomes an owner first continues the ids after the administrator's last stored one, whatever the clocks.
/// </summary>
public sealed partial class ClusterChatAppender : IChatAppender, IHostedService
{
    private readonly ShardRequests _requests;
    private readonly LocalChatAppender _local;
    private readonly IMessageStore _messages;
    private readonly MessageIdGenerator _ids;
    private readonly RabbitMqBackplane _backplane;
    private readonly ILogger<ClusterChatAppender> _logger;
    // Administrators whose ids this node has continued from their last stored one since it last gained ownership.
    private readonly ConcurrentDictionary<string, bool> _continued = new(StringComparer.Ordinal);

    public ClusterChatAppender(ShardRequests requests, LocalChatAppender local, IMessageStore messages, MessageIdGenerator ids, RabbitMqBackplane backplane,
        ILogger<ClusterChatAppender> logger)
    {
        _backplane = backplane;
        _requests = requests;
        _local = local;
        _messages = messages;
        _ids = ids;
        _logger = logger;
        requests.Handle(OwnAsync);
        requests.OwnershipReset += _continued.Clear;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task<long> AppendAsync(ChatMessageDraft draft)
    {
        byte[] answer;
        try
        {
            answer = await _requests.RequestAsync(_requests.ShardOf(draft.AdminId), JsonSerializer.SerializeToUtf8Bytes(Request.From(draft))).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            throw new PersistenceUnavailableException("storage unavailable: the conversation's node did not answer", ex);
        }
        var result = JsonSerializer.Deserialize<Answer>(answer) ?? throw new PersistenceUnavailableException("storage unavailable: unreadable answer");
        return result switch
        {
            { Id: > 0 } => result.Id,
            { Rejection: { } reason } => throw new MessageRejectedException(reason),
            _ => throw new PersistenceUnavailableException(result.Unavailable ?? "storage unavailable"),
        };
    }

    // On the owner: one request at a time, in the order they were sent to the shard.
    private async Task OwnAsync(ShardRequest request)
    {
        ChatMessageDraft draft;
        try
        {
            draft = (JsonSerializer.Deserialize<Request>(request.Body) ?? throw new JsonException("empty request")).ToDraft();
        }
        catch (Exception ex) when (ex is JsonException or FormatException)
        {
            Log.BadRequest(_logger, ex);
            await request.AnswerAsync(Encode(new Answer { Rejection = MessageRejection.InvalidParty })).ConfigureAwait(false);
            return;
        }
        Task<long> committed;
        try
        {
            if (!_continued.ContainsKey(draft.AdminId))
            {
                // Taking over: first read what the previous owner published (it reached this node's queue before this
                // request was given here), so nothing this node publishes overtakes it; then continue its ids.
                await _backplane.ReceivedAllAsync().ConfigureAwait(false);
                _ids.AdvancePast(await _messages.LastIdAsync(draft.AdminId).ConfigureAwait(false));
                _continued[draft.AdminId] = true;
            }
            // Given again: the previous owner died before it answered. It may have committed (the client-msg-id then finds
            // the row) without publishing; the message is published again in its place (subscribers drop what they had).
            committed = _local.AppendAsync(draft, _ids.Next, publishDuplicate: request.Redelivered);
        }
        catch (MessageRejectedException ex)
        {
            await request.AnswerAsync(Encode(new Answer { Rejection = ex.Reason })).ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or System.Data.Common.DbException or TimeoutException)
        {
            await request.AnswerAsync(Encode(new Answer { Unavailable = "storage unavailable" })).ConfigureAwait(false);
            return;
        }
        _ = AnswerWhenCommittedAsync(request, committed);
    }

    private async Task AnswerWhenCommittedAsync(ShardRequest request, Task<long> committed)
    {
        Answer answer;
        try
        {
            answer = new Answer { Id = await committed.ConfigureAwait(false) };
            // Acknowledged only once the message is on its way to the other nodes: a death after the acknowledgement
            // leaves nothing committed and unpublished.
            await _backplane.PublishedAsync().ConfigureAwait(false);
        }
        catch (MessageRejectedException ex)
        {
            answer = new Answer { Rejection = ex.Reason };
        }
        catch (PersistenceUnavailableException ex)
        {
            answer = new Answer { Unavailable = ex.Message };
        }
        catch (Exception)
        {
            answer = new Answer { Unavailable = "storage unavailable: not stored after an unexpected error" };
        }
        await request.AnswerAsync(Encode(answer)).ConfigureAwait(false);
    }

    private static byte[] Encode(Answer answer) => JsonSerializer.SerializeToUtf8Bytes(answer);

    private sealed class Request
    {
        public string A { get; set; } = "";
        public string C { get; set; } = "";
        public string S { get; set; } = "";
        public string R { get; set; } = "";
        public string B { get; set; } = "";                        // base64: the bytes as sent (the store checks UTF-8)
        public long T { get; set; }
        public string? M { get; set; }

        public static Request From(ChatMessageDraft d) => new()
        {
            A = d.AdminId, C = d.ClientId, S = d.SenderId, R = d.ReceiverId, B = Convert.ToBase64String(d.Body.Span),
            T = d.SentAt.ToUnixTimeMilliseconds(), M = d.ClientMsgId,
        };

        public ChatMessageDraft ToDraft() => new(A, C, S, R, Convert.FromBase64String(B), DateTimeOffset.FromUnixTimeMilliseconds(T), M);
    }

    private sealed class Answer
    {
        public long Id { get; set; }
        public MessageRejection? Rejection { get; set; }
        public string? Unavailable { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 640, Level = LogLevel.Warning, Message = "cluster: a chat request did not read")]
        public static partial void BadRequest(ILogger logger, Exception exception);
    }
}
