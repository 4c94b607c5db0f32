namespace WsBroker.Persistence;

/// <summary>A chat message before it has an id. <see cref="Body"/> is the UTF-8 bytes as received: the store keeps this
/// memory (no copy) until the message is committed or failed, so the caller must not reuse it meanwhile.
/// <see cref="ClientMsgId"/>, when given, is the sender's own id for it (1..64 of <c>[A-Za-z0-9_-]</c>): the store keeps at
/// most one message per sender and client-msg-id.</summary>
public sealed record ChatMessageDraft(string AdminId, string ClientId, string SenderId, string ReceiverId, ReadOnlyMemory<byte> Body,
    DateTimeOffset SentAt, string? ClientMsgId = null);
