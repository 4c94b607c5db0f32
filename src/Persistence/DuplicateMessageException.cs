namespace WsBroker.Persistence;

/// <summary>The sender's client-msg-id is already stored: this append created no row. <see cref="OriginalId"/> is the id of
/// the message stored for it (answer the resend with that one). <see cref="Exception.Message"/> is a fixed, client-safe
/// text.</summary>
public sealed class DuplicateMessageException : Exception
{
    public DuplicateMessageException(long originalId) : base("duplicate client-msg-id") => OriginalId = originalId;

    public long OriginalId { get; }
}
