namespace WsBroker.Broker.Routing;

/// <summary>
/// Credit flow, after RabbitMQ's: what one publishing session owes the subscribers it queued into above their high-water
/// mark. A session's read loop makes its account <see cref="Current"/> once, for its whole async flow (so a handler's
/// continuations after an await are charged to it too), opens it around each batch of frames it hands over
/// (<see cref="BeginHandling"/>), and before it reads its socket again waits until every creditor has drained
/// (<see cref="PayAsync"/>). <see cref="LocalDelivery"/> charges the account it finds. A publish made outside a handler —
/// the broker's own presence notices, a commit callback, a message from another node — charges nobody and never waits.
/// <para>The account holds no reference to its session: an execution context that outlives the session (a task started
/// from a handler) keeps only this small object alive, emptied by <see cref="Close"/>.</para>
/// </summary>
public sealed class PublisherCredit
{
    private static readonly AsyncLocal<PublisherCredit?> s_current = new();
    // Made on the first debt (most publishers never owe), then also the lock: an account costs an idle session no more.
    private HashSet<IMessageSink>? _creditors;
    private int _handling;
    private int _owed;
    private volatile bool _closed;

    /// <summary>The account of the session whose read loop runs this code, or null (a broker-internal publish).</summary>
    public static PublisherCredit? Current => s_current.Value;

    /// <summary>Makes this account the ambient one for the calling async flow (once, at the start of a read loop).</summary>
    public void MakeCurrent() => s_current.Value = this;

    /// <summary>True while a creditor has not been waited for.</summary>
    public bool InDebt => Volatile.Read(ref _owed) != 0;

    /// <summary>The read loop is handing frames to its session: deliveries from here on are charged.</summary>
    public void BeginHandling() => Volatile.Write(ref _handling, 1);

    /// <summary>The handler returned: a later publish in this flow (a commit callback, say) is not the publisher's doing.</summary>
    public void EndHandling() => Volatile.Write(ref _handling, 0);

    /// <summary>Records that a delivery was queued into <paramref name="sink"/> above its high-water mark.</summary>
    public void Owe(IMessageSink sink)
    {
        if (Volatile.Read(ref _handling) == 0 || _closed) return;
        var creditors = Volatile.Read(ref _creditors);
        if (creditors is null)
        {
            var fresh = new HashSet<IMessageSink>(ReferenceEqualityComparer.Instance);
            creditors = Interlocked.CompareExchange(ref _creditors, fresh, null) ?? fresh;
        }
        lock (creditors)
        {
            if (_closed) return;
            creditors.Add(sink);
            Volatile.Write(ref _owed, 1);
        }
    }

    /// <summary>Waits until every creditor has drained below its low-water mark, is closing, or has stalled (no write
    /// progress: it holds no publisher, see <see cref="IMessageSink.IsStalled"/>; checked every
    /// <paramref name="stallCheck"/> while waiting); returns false when there was nothing to wait for.</summary>
    public async ValueTask<bool> PayAsync(TimeSpan stallCheck, CancellationToken cancellationToken)
    {
        var waited = false;
        var owed = Volatile.Read(ref _creditors);
        if (owed is null) return false;
        while (!_closed)
        {
            IMessageSink[] creditors;
            lock (owed)
            {
                Volatile.Write(ref _owed, 0);
                if (owed.Count == 0) return waited;
                creditors = [.. owed];
                owed.Clear();
            }
            foreach (var creditor in creditors)
            {
                var drained = creditor.WhenDrained();
                // Closed (the session is closing: it reads nothing more) ends the wait at the next look.
                while (!drained.IsCompleted && !creditor.IsStalled && !_closed)
                {
                    waited = true;
                    await drained.WaitAsync(stallCheck, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
        }
        return waited;
    }

    /// <summary>The session is closing or has ended: forget every creditor, take no more debt, and end a wait for credit
    /// (within the stall check's interval).</summary>
    public void Close()
    {
        _closed = true;
        if (Volatile.Read(ref _creditors) is { } creditors)
        {
            lock (creditors) creditors.Clear();
        }
        Volatile.Write(ref _owed, 0);
    }
}
