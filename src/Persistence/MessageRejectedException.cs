namespace WsBroker.Persistence;

/// <summary>The store will not store this message, now or on retry. <see cref="Exception.Message"/> is a fixed text per
/// <see cref="Reason"/> that is safe to show a client; database detail, if any, is only in
/// <see cref="Exception.InnerException"/> (for logs).</summary>
public sealed class MessageRejectedException : Exception
{
    public MessageRejectedException(MessageRejection reason) : base(TextOf(reason)) => Reason = reason;

    public MessageRejectedException(MessageRejection reason, Exception innerException) : base(TextOf(reason), innerException) => Reason = reason;

    public MessageRejection Reason { get; }

    /// <summary>The fixed text of <paramref name="reason"/>.</summary>
    public static string TextOf(MessageRejection reason) => reason switch
    {
        MessageRejection.InvalidParty => "conversation ids must be 1..64 characters",
        MessageRejection.BodyTooLarge => "message body too large",
        MessageRejection.BodyNotUtf8 => "message body is not UTF-8 text",
        MessageRejection.InvalidId => "message id must be positive",
        MessageRejection.DuplicateId => "message id already in use",
        MessageRejection.RefusedByDatabase => "message refused by storage",
        MessageRejection.InvalidClientMsgId => "invalid client-msg-id",
        _ => "message rejected",
    };
}
