namespace WsBroker.Broker.Sessions;

/// <summary>
/// The answers a session still owes: SENDs to stored destinations are answered after their commit, later than frames
/// after them. A DISCONNECT's or COMMIT's RECEIPT must not overtake them (STOMP 1.2: the RECEIPT for DISCONNECT comes after
/// everything before it), so it waits here first, bounded by <c>timeout</c>: a store that neither commits nor fails in time
/// must not hold the session forever.
/// </summary>
internal sealed class ReceiptTracker(TimeSpan timeout)
{
    private readonly List<Task> _pending = [];

    /// <summary>Remembers an answer still to come (nothing to remember when it has come already).</summary>
    public void Track(Task answered)
    {
        if (answered.IsCompleted) return;
        lock (_pending)
        {
            _pending.RemoveAll(t => t.IsCompleted);
            _pending.Add(answered);
        }
    }

    /// <summary>How many answers are still to come.</summary>
    public int Pending
    {
        get { lock (_pending) return _pending.Count(t => !t.IsCompleted); }
    }

    /// <summary>Completes when every answer tracked so far has come, or the timeout passed (true when all came).</summary>
    public async Task<bool> AllAnsweredAsync()
    {
        Task[] pending;
        lock (_pending) pending = [.. _pending.Where(t => !t.IsCompleted)];
        if (pending.Length == 0) return true;
        try
        {
            await Task.WhenAll(pending).WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        catch (Exception)
        {
            return pending.All(t => t.IsCompleted);               // an answer that failed has still been given
        }
    }
}
