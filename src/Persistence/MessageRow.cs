namespace WsBroker.Persistence;

/// <summary>A <c>messages</c> row as Dapper reads it (columns aliased to these names).</summary>
internal class MessageRow
{
    public long Id { get; set; }
    public string AdminId { get; set; } = "";
    public string ClientId { get; set; } = "";
    public string SenderId { get; set; } = "";
    public string ReceiverId { get; set; } = "";
    public string Body { get; set; } = "";
    public long SentAt { get; set; }
    public bool Seen { get; set; }
    public long? SeenAt { get; set; }
    public string? ClientMsgId { get; set; }
    public long? DeliveredAt { get; set; }

    public ChatMessage ToMessage() => new(Id, AdminId, ClientId, SenderId, ReceiverId, Body, DateTimeOffset.FromUnixTimeMilliseconds(SentAt),
        Seen, SeenAt is { } s ? DateTimeOffset.FromUnixTimeMilliseconds(s) : null,
        ClientMsgId, DeliveredAt is { } d ? DateTimeOffset.FromUnixTimeMilliseconds(d) : null);
}

/// <summary>A conversation's last message with the reader's unread count.</summary>
internal sealed class SummaryRow : MessageRow
{
    public long Unread { get; set; }
}
