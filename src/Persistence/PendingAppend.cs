namespace WsBroker.Persistence;

/// <summary>The id the store gave a message and its commit: <see cref="Committed"/> completes when the message is stored,
/// and faults with <see cref="PersistenceUnavailableException"/> (not stored: outage, queue full, shutting down) or
/// <see cref="MessageRejectedException"/> (the database refused the row). It never completes successfully for a message
/// that is not stored, and faults with <see cref="DuplicateMessageException"/> when the sender's client-msg-id turned out to be
/// stored already (under <see cref="DuplicateMessageException.OriginalId"/>).
/// <see cref="Duplicate"/> is true when the same sender's client-msg-id was still on its way to the database: <see cref="Id"/>
/// and <see cref="Committed"/> are then those of that earlier append (no new id was taken, no second row will exist).</summary>
public readonly record struct PendingAppend(long Id, Task Committed, bool Duplicate = false);
