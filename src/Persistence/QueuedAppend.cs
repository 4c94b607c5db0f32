using System.Text;

namespace WsBroker.Persistence;

/// <summary>One append of <see cref="AppendQueue"/> from the id it took until it is settled: its draft, its settled
/// callback, how it was decided, and the task handed out for it.</summary>
internal sealed class QueuedAppend(long id, ChatMessageDraft draft, (string SenderId, string ClientMsgId)? key, Action<long, Exception?>? settled, long enqueuedMs)
{
    private static readonly object s_committed = new();
    private string? _bodyText;
    private object? _outcome;

    public long Id { get; } = id;
    public ChatMessageDraft Draft { get; } = draft;
    public (string SenderId, string ClientMsgId)? Key { get; } = key;
    public Action<long, Exception?>? Settled { get; } = settled;
    public long EnqueuedMs { get; } = enqueuedMs;
    public TaskCompletionSource Source { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public Task Task => Source.Task;

    /// <summary>In the id registry with its task handed out (false for an append thrown after taking its id).</summary>
    public bool Registered { get; set; }

    public bool IsDecided => Volatile.Read(ref _outcome) is not null;

    /// <summary>The failure it was decided with; null when committed (or not decided yet).</summary>
    public Exception? Error => Volatile.Read(ref _outcome) as Exception;

    public bool TryDecide(Exception? error) => Interlocked.CompareExchange(ref _outcome, error ?? s_committed, null) is null;

    /// <summary>The body as the SQL parameter: decoded once, at the first insert attempt (a retry reuses it).</summary>
    public string BodyText => _bodyText ??= Encoding.UTF8.GetString(Draft.Body.Span);
}
