namespace WsBroker.Broker.Sessions;

/// <summary>Who is online as clients see it: this node's sessions (<see cref="LocalPresence"/>), or in cluster mode every
/// node's. <see cref="Changed"/> reports each user's transitions once per node that observes them, so a node tells its own
/// subscribers (it never forwards them to other nodes: each computes the same view).</summary>
public interface IPresence
{
    bool IsOnline(string userId);

    /// <summary>(user, online) when the user's first session anywhere opened or their last one closed.</summary>
    event Action<string, bool>? Changed;
}

/// <summary>Single-node presence: the session registry's first and last session of each user.</summary>
public sealed class LocalPresence : IPresence
{
    private readonly SessionRegistry _sessions;

    public LocalPresence(SessionRegistry sessions)
    {
        _sessions = sessions;
        sessions.UserOnline += id => Changed?.Invoke(id, true);
        sessions.UserOffline += id => Changed?.Invoke(id, false);
    }

    public bool IsOnline(string userId) => _sessions.IsOnline(userId);

    public event Action<string, bool>? Changed;
}
