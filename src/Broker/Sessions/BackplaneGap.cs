using WsBroker.Broker.Destinations;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// After a backplane outage (docs/design.md §8, "Backplane outage") this node may have missed what other nodes published
/// meanwhile. Stored messages are recovered with <c>since</c>, so every session with a subscription that can resume (a
/// replay source's, or one a plug-in serves itself such as the inbox, which rebuilds from the store) is closed with
/// ERROR <c>backplane gap</c> (a raw topic URL: close code 1012), and its client resumes, on this node or another,
/// from the last message it has. Sessions with only other subscriptions keep running: what they missed was never stored.
/// Their resumable subscriptions are fenced at once, before anything from after the gap is delivered (a client that got a
/// later message would resume past what it missed); the closes are spread over time (<see cref="SessionsPerStep"/> every
/// <see cref="Step"/>) so that the reconnects do not all come at once.
/// </summary>
public sealed partial class BackplaneGap(BrokerServices services, ILogger<BackplaneGap> logger) : IHostedService
{
    /// <summary>How many sessions are closed per <see cref="Step"/>.</summary>
    public const int SessionsPerStep = 500;

    public static readonly TimeSpan Step = TimeSpan.FromMilliseconds(50);

    private readonly CancellationTokenSource _stopping = new();
    // Sessions fenced by an outage and not yet closed, one list per outage; one run closes them at a time.
    private readonly Queue<List<BrokerSession>> _closing = new();
    private int _pending;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        services.Backplane.Resumed += OnResumed;
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        services.Backplane.Resumed -= OnResumed;
        await _stopping.CancelAsync().ConfigureAwait(false);
    }

    /// <summary>Raised by the backplane before anything that arrives after the gap is delivered: fences every resumable
    /// subscription now, on the caller's thread, so no session receives a message from after the gap before its ERROR (its
    /// client's <c>since</c> would then pass what it missed); the closes themselves are spread.</summary>
    internal void OnResumed()
    {
        Func<Destination, bool> resumable = d => services.FindReplaySource(d) is not null || services.FindSubscriptionHandler(d) is not null;
        var fenced = new List<BrokerSession>();
        foreach (var session in services.Sessions.All)
        {
            try
            {
                if (session.Fence(resumable)) fenced.Add(session);
            }
            catch (Exception ex)
            {
                // A destination's plug-in failed to say whether it resumes: the session is closed anyway (its client
                // resumes with since, or starts afresh), never left open and possibly fenced.
                Log.FenceFailed(logger, ex, session.SessionId);
                fenced.Add(session);
            }
        }
        Log.Closing(logger, fenced.Count);
        lock (_closing) _closing.Enqueue(fenced);
        if (Interlocked.Increment(ref _pending) == 1) _ = Task.Run(RunAsync);
    }

    private async Task RunAsync()
    {
        do
        {
            List<BrokerSession>? sessions;
            lock (_closing) _closing.TryDequeue(out sessions);
            if (sessions is not null) await CloseAsync(sessions).ConfigureAwait(false);
        }
        while (Interlocked.Decrement(ref _pending) != 0 && !_stopping.IsCancellationRequested);
    }

    private async Task CloseAsync(List<BrokerSession> sessions)
    {
        for (var i = 0; i < sessions.Count && !_stopping.IsCancellationRequested; i++)
        {
            try
            {
                sessions[i].CloseWithError("backplane gap", null, DisconnectReason.BackplaneGap,
                    "messages from other nodes may have been missed while the cluster backplane was away: reconnect and resubscribe with since");
            }
            catch (Exception ex)
            {
                // One session's failure must not leave the rest fenced and open: that one is dropped, the others go on.
                Log.CloseFailed(logger, ex, sessions[i].SessionId);
                sessions[i].Abort(DisconnectReason.BackplaneGap);
            }
            if ((i + 1) % SessionsPerStep == 0)
                await Task.Delay(Step, _stopping.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 130, Level = LogLevel.Warning, Message = "cluster backplane resumed: closing {Count} sessions with resumable subscriptions so that their clients resume with since")]
        public static partial void Closing(ILogger logger, int count);

        [LoggerMessage(EventId = 131, Level = LogLevel.Error, Message = "backplane gap: session {SessionId} could not be fenced; it is closed")]
        public static partial void FenceFailed(ILogger logger, Exception exception, string sessionId);

        [LoggerMessage(EventId = 132, Level = LogLevel.Error, Message = "backplane gap: closing session {SessionId} failed; it is dropped")]
        public static partial void CloseFailed(ILogger logger, Exception exception, string sessionId);
    }
}
