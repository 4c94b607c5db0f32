namespace WsBroker.Persistence;

/// <summary>Why the store refused a chat message. Each reason has one fixed, client-safe text
/// (<see cref="MessageRejectedException"/>).</summary>
public enum MessageRejection
{
    /// <summary>An admin, client, sender or receiver id is empty or longer than 64 characters.</summary>
    InvalidParty,
    /// <summary>The body is larger than <c>Storage:MaxBodyBytes</c>.</summary>
    BodyTooLarge,
    /// <summary>The body is not valid UTF-8 (it is stored as text).</summary>
    BodyNotUtf8,
    /// <summary>The id allocator returned zero or a negative id.</summary>
    InvalidId,
    /// <summary>The id allocator returned an id that is already waiting for its commit.</summary>
    DuplicateId,
    /// <summary>The database answered but refused the row (a constraint or value it does not accept).</summary>
    RefusedByDatabase,
    /// <summary>A client-msg-id that is not 1..64 characters of <c>[A-Za-z0-9_-]</c>.</summary>
    InvalidClientMsgId,
}
