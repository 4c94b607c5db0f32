using WsBroker.Broker.Destinations;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// After a backplane outage (docs/design.md §8, "Backplane outage") this node may have missed what other nodes published
/// meanwhile. Stored messages are recovered with <c>since</c>, so every session with a subscription that can resume (a
/// replay source's, or one a plug-in serves itself such as the inbox, which rebuilds from the store) is closed with
/// ERROR <c>backplane gap</c> (a raw topic URL: close code 1012), and its client resumes, on this node or another,
/// from the last message it has. Sessions with only other subscriptions keep running: what they missed was never stored.
/// The closes are spread over time (<see cref="SessionsPerStep"/> every <see cref="Step"/>) so that the reconnects do
/// not all come at once.
/// </summary>
public sealed partial class BackplaneGap(BrokerServices services, ILogger<BackplaneGap> logger) : IHostedService
{
    /// <summary>How many sessions are closed per <see cref="Step"/>.</summary>
    public const int SessionsPerStep = 500;

    public static readonly TimeSpan Step = TimeSpan.FromMilliseconds(50);

    private readonly CancellationTokenSource _stopping = new();
    // Outages reported and not yet handled: one run at a time, and one more after it when another came meanwhile.
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

    internal void OnResumed()
    {
        if (Interlocked.Increment(ref _pending) == 1) _ = Task.Run(RunAsync);
    }

    private async Task RunAsync()
    {
        int handled;
        do
        {
            handled = Volatile.Read(ref _pending);
            await CloseResumableAsync().ConfigureAwait(false);
        }
        while (Interlocked.Add(ref _pending, -handled) != 0 && !_stopping.IsCancellationRequested);
    }

    private async Task CloseResumableAsync()
    {
        Func<Destination, bool> resumable = d => services.FindReplaySource(d) is not null || services.FindSubscriptionHandler(d) is not null;
        var sessions = services.Sessions.All.Where(s => s.Subscribes(resumable)).ToArray();
        Log.Closing(logger, sessions.Length);
        for (var i = 0; i < sessions.Length && !_stopping.IsCancellationRequested; i++)
        {
            sessions[i].CloseWithError("backplane gap", null, DisconnectReason.BackplaneGap,
                "messages from other nodes may have been missed while the cluster backplane was away: reconnect and resubscribe with since");
            if ((i + 1) % SessionsPerStep == 0)
                await Task.Delay(Step, _stopping.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 130, Level = LogLevel.Warning, Message = "cluster backplane resumed: closing {Count} sessions with resumable subscriptions so that their clients resume with since")]
        public static partial void Closing(ILogger logger, int count);
    }
}
