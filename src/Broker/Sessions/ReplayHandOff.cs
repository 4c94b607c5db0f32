using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// A subscription resuming with <c>since</c> (docs/design.md §3): it enters the router first with live deliveries held
/// back, then the stored messages after <c>since</c> are read and queued (each with <c>replay:true</c>), then the held ones
/// not already replayed: no gap and no duplicate at the hand-off, even while messages commit meanwhile. Past the source's
/// maximum the session tells the client where it pages history (<see cref="BrokerSession.ReplayTruncated"/>). Stateless:
/// the subscription holds the live deliveries meanwhile.
/// </summary>
internal static partial class ReplayHandOff
{
    /// <summary>Resumes <paramref name="subscription"/> of <paramref name="session"/> after <paramref name="since"/>; false
    /// when the source failed (the session then closes with an ERROR that answers <paramref name="receipt"/>).</summary>
    public static async ValueTask<bool> ResumeAsync(BrokerSession session, Subscription subscription, IReplaySource replay, long since,
        string? receipt)
    {
        subscription.BeginReplay();
        session.Services.Router.Add(subscription);
        ReplayPage page;
        try
        {
            page = await replay.ReplayAsync(subscription.Destination, since, session.Aborted);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A source that failed unexpectedly: the client hears it (and can resubscribe), the log has the detail.
            Log.ReplayFailed(session.Services.Logger, ex, session.SessionId, subscription.Destination.Text);
            page = new ReplayPage([], Error: "internal error");
        }
        if (page.Error is not null)
        {
            subscription.EndReplay(long.MaxValue);
            session.CloseWithError("replay unavailable: " + page.Error, receipt, DisconnectReason.ProtocolError);
            return false;
        }
        var last = since;
        foreach (var message in page.Messages)
        {
            session.TryDeliver(subscription, message, replay: true);
            last = message.Id;
        }
        if (page.NextId is { } next) session.ReplayTruncated(subscription, next);
        subscription.EndReplay(last);
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "replay of {Destination} for connection {SessionId} failed")]
        public static partial void ReplayFailed(ILogger logger, Exception exception, string sessionId, string destination);
    }
}
