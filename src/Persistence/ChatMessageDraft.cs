namespace WsBroker.Persistence;

/// <summary>A chat message before it has an id. <see cref="Body"/> is the UTF-8 bytes as received: the store keeps this
/// memory (no copy) until the message is committed or failed, so the caller must not reuse it meanwhile.</summary>
public sealed record ChatMessageDraft(string AdminId, string ClientId, string SenderId, string ReceiverId, ReadOnlyMemory<byte> Body,
    DateTimeOffset SentAt);
