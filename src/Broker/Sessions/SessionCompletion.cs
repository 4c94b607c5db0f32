namespace WsBroker.Broker.Sessions;

/// <summary>
/// The task that completes when a session has ended, made only when someone asks for it (a shutdown waits for every
/// session; nothing else does), so an idle session pays for no task. Once ended, whoever asks gets a completed one.
/// <para>A struct kept in a (non-readonly) field of its session, like <see cref="Outbox"/>: use it only through that
/// field, never through a copy.</para>
/// </summary>
internal struct SessionCompletion
{
    private static readonly TaskCompletionSource s_ended = Ended();
    private TaskCompletionSource? _source;                        // null: nobody asked yet; s_ended: the session ended

    public Task Task
    {
        get
        {
            var current = Volatile.Read(ref _source);
            if (current is null)
            {
                var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                current = Interlocked.CompareExchange(ref _source, fresh, null) ?? fresh;
            }
            return current.Task;
        }
    }

    /// <summary>The session has ended: completes the task if someone is waiting for it.</summary>
    public void Complete() => Interlocked.Exchange(ref _source, s_ended)?.TrySetResult();

    private static TaskCompletionSource Ended()
    {
        var ended = new TaskCompletionSource();
        ended.SetResult();
        return ended;
    }
}
