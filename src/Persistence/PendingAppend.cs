namespace WsBroker.Persistence;

/// <summary>The id the store gave a message and its commit: <see cref="Committed"/> completes when the message is stored,
/// and faults with <see cref="PersistenceUnavailableException"/> (not stored: outage, queue full, shutting down) or
/// <see cref="MessageRejectedException"/> (the database refused the row). It never completes successfully for a message
/// that is not stored.</summary>
public readonly record struct PendingAppend(long Id, Task Committed);
