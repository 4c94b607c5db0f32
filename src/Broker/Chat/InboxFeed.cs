using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Persistence;
using WsBroker.UserSync;

namespace WsBroker.Broker.Chat;

/// <summary>
/// The live inboxes of this node's users (<c>/user/queue/inbox</c>, docs/design.md §3 "Inbox"). One loop applies every
/// event in the order it arrives (chat messages and read receipts from <see cref="InboxTap"/>, presence, user events,
/// subscribes and unsubscribes), so each inbox's ids grow in the order its subscribers are sent its changes. An inbox is
/// read from the store when its user's first subscription on this node comes (events meanwhile are held and applied
/// after: none is lost, and one the store already had changes nothing), and kept from the events alone after that; it
/// outlives its last subscription by <c>Chat:InboxRetainSeconds</c>, so that a client reconnecting to this node with
/// <c>since</c> is sent just what changed.
/// </summary>
public sealed partial class InboxFeed : ISubscriptionHandler, IHostedService, IDisposable
{
    private static readonly TimeSpan s_sweep = TimeSpan.FromSeconds(5);
    private readonly Channel<object> _events = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    // Written by the loop only; the tap and the event handlers only ask whether a user is in them.
    private readonly ConcurrentDictionary<string, InboxState> _states = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, List<InboxState>> _byPeer = new(StringComparer.Ordinal);
    // The loop's own.
    private readonly Dictionary<Subscription, InboxState> _bySubscription = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<InboxState, List<SubscribeRequest>> _loading = new(ReferenceEqualityComparer.Instance);
    // Inboxes whose store read started before a backplane gap and had not ended: what they read may lack messages other
    // nodes committed during the outage, so they are read again when the read ends (on the feed's loop only).
    private readonly HashSet<InboxState> _readBeforeGap = [];
    private readonly InboxTap _tap;
    private readonly InboxLoader _loader;
    private readonly IPresence _presence;
    private readonly IUserStore _users;
    private readonly TopicRouter _router;
    private readonly Func<long> _next;
    private readonly int _nodeId;
    private readonly long _retainMs;
    private readonly ILogger<InboxFeed> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private Timer? _sweeper;

    public InboxFeed(InboxLoader loader, IUserStore users, IPresence presence, IUserEvents userEvents, TopicRouter router, MessageIdGenerator ids,
        IOptions<ChatOptions> chat, IOptions<BrokerOptions> broker, BrokerMetrics metrics, ILogger<InboxFeed> logger, IBackplane backplane)
    {
        _loader = loader;
        _users = users;
        _presence = presence;
        _router = router;
        _next = ids.Next;
        _nodeId = broker.Value.NodeId;
        _retainMs = chat.Value.InboxRetainSeconds * 1000L;
        _logger = logger;
        _tap = new InboxTap(_states.ContainsKey, Post);
        presence.Changed += (userId, _) =>
        {
            if (_byPeer.ContainsKey(userId)) Post(new PresenceChanged(userId));
        };
        userEvents.UserChanged += user =>
        {
            if (!_states.IsEmpty) Post(user);
        };
        // Messages of other nodes may have been missed: what this node holds can no longer be trusted (BackplaneGap closes
        // the inbox subscriptions; their clients resubscribe and get inboxes read afresh from the store).
        backplane.Resumed += BackplaneResumed;
        metrics.ObserveGauge("wsbroker_inboxes", () => _states.Count, "{inbox}",
            "Live inboxes held on this node: subscribed, being read, or kept for a resume (Chat:InboxRetainSeconds).");
    }

    public bool Handles(Destination destination) => destination.Text == InboxMessages.Destination;

    public async ValueTask<string?> SubscribeAsync(BrokerPrincipal user, Subscription subscription, long? since, CancellationToken cancellationToken)
    {
        var request = new SubscribeRequest(user.UserId, subscription, since);
        if (!_events.Writer.TryWrite(request)) return "server shutting down";
        try
        {
            return await request.Done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Unsubscribed(subscription);                                // the session gave up: after the request, so it ends it
            return "connection closing";
        }
    }

    public void Unsubscribed(Subscription subscription) => Post(new Ended(subscription));

    private void Post(object item) => _events.Writer.TryWrite(item);

    internal void BackplaneResumed() => Post(Gap.Instance);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(RunAsync, CancellationToken.None);
        _sweeper = new Timer(static feed => ((InboxFeed)feed!).Post(Sweep.Instance), this, s_sweep, s_sweep);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _sweeper?.Dispose();
        _events.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public void Dispose()
    {
        _sweeper?.Dispose();
        _stopping.Dispose();
    }

    private async Task RunAsync()
    {
        var reader = _events.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stopping.Token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var item))
                {
                    try
                    {
                        await HandleAsync(item).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        Log.EventFailed(_logger, ex, item.GetType().Name);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var request in _loading.Values.SelectMany(r => r)) request.Done.TrySetResult("server shutting down");
            while (reader.TryRead(out var item)) (item as SubscribeRequest)?.Done.TrySetResult("server shutting down");
            _tap.Detach(_router);
        }
    }

    private ValueTask HandleAsync(object item)
    {
        switch (item)
        {
            case InboxMessage message: return MessageAsync(message);
            case InboxSeen seen: Seen(seen); break;
            case PresenceChanged presence: Presence(presence.UserId); break;
            case UserRecord user: User(user); break;
            case SubscribeRequest request: Subscribe(request); break;
            case Loaded loaded: return LoadedAsync(loaded);
            case Ended ended: Unsubscribe(ended.Subscription); break;
            case Sweep: SweepRetained(); break;
            case Gap: Forget(); break;
        }
        return ValueTask.CompletedTask;
    }

    // ---- events -------------------------------------------------------------------------------------------------------

    private async ValueTask MessageAsync(InboxMessage message)
    {
        foreach (var userId in (string[])[message.SenderId, message.ReceiverId])
        {
            if (!_states.TryGetValue(userId, out var state)) continue;
            if (!state.IsLoaded) state.Held.Add(message);
            else Emit(state, await ApplyAsync(state, message).ConfigureAwait(false));
        }
    }

    private async ValueTask<InboxChange?> ApplyAsync(InboxState state, InboxMessage message)
    {
        var peerId = message.PeerOf(state.UserId);
        UserRecord? peer = null;
        if (!state.HasConversation(peerId))
        {
            Index(peerId, state);                                      // before its presence is read: no change falls between
            peer = await FindUserAsync(peerId).ConfigureAwait(false);
        }
        return state.OnMessage(message, peer, _presence.IsOnline(peerId), _next);
    }

    private void Seen(InboxSeen seen)
    {
        if (!_states.TryGetValue(seen.ReaderId, out var state)) return;
        if (!state.IsLoaded)
        {
            state.Held.Add(seen);
            return;
        }
        Index(seen.PeerId, state);
        Emit(state, state.OnSeen(seen, _next));
    }

    private void Presence(string userId)
    {
        if (!_byPeer.TryGetValue(userId, out var states)) return;
        var online = _presence.IsOnline(userId);                       // now, whatever order the notices came in
        foreach (var state in states) Emit(state, state.OnPresence(userId, online, _next));
    }

    private void User(UserRecord user)
    {
        if (_byPeer.TryGetValue(user.Id, out var states))
        {
            foreach (var state in states) Emit(state, state.OnUser(user, _next));
        }
        // An inbox being read does not know its peers yet: it applies the event once it does.
        foreach (var state in _loading.Keys) state.Held.Add(user);
    }

    private void Emit(InboxState state, InboxChange? change)
    {
        if (change is not { } c || state.Subscriptions.Count == 0) return;
        var message = InboxMessages.Delta(c);
        foreach (var subscription in state.Subscriptions) subscription.Deliver(message);
    }

    // ---- subscriptions ------------------------------------------------------------------------------------------------

    private void Subscribe(SubscribeRequest request)
    {
        if (_states.TryGetValue(request.UserId, out var state))
        {
            if (state.IsLoaded) Attach(state, request);
            else _loading[state].Add(request);
            return;
        }
        state = new InboxState(request.UserId);
        _tap.Attach(_router);                                          // first: every event from now on reaches the inbox
        _states[request.UserId] = state;
        _loading[state] = [request];
        _ = Task.Run(() => LoadAsync(state));
    }

    private async Task LoadAsync(InboxState state)
    {
        Loaded loaded;
        try
        {
            loaded = new Loaded(state, await _loader.LoadAsync(state.UserId, _stopping.Token).ConfigureAwait(false), null);
        }
        catch (OperationCanceledException)
        {
            loaded = new Loaded(state, null, "server shutting down");
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or System.Data.Common.DbException or TimeoutException)
        {
            Log.LoadFailed(_logger, ex, state.UserId);
            loaded = new Loaded(state, null, "storage unavailable");
        }
        catch (Exception ex)
        {
            Log.LoadFailed(_logger, ex, state.UserId);
            loaded = new Loaded(state, null, "internal error");
        }
        Post(loaded);
    }

    private async ValueTask LoadedAsync(Loaded loaded)
    {
        var state = loaded.State;
        if (_readBeforeGap.Remove(state) && loaded.Load is not null)
        {
            _ = Task.Run(() => LoadAsync(state));                     // what it read may lack the outage's messages
            return;
        }
        _loading.Remove(state, out var waiting);
        if (loaded.Load is not { } load)
        {
            foreach (var request in waiting!) request.Done.TrySetResult("inbox unavailable: " + loaded.Error);
            _states.TryRemove(state.UserId, out _);
            if (_states.IsEmpty) _tap.Detach(_router);
            return;
        }
        foreach (var conversation in load.Conversations) Index(InboxLoader.PeerOf(conversation, state.UserId), state);
        state.Load(load, _presence.IsOnline);
        // What happened while the store was read: a change the store already had is recognised by id and changes nothing.
        foreach (var held in state.Held)
        {
            switch (held)
            {
                case InboxMessage message: await ApplyAsync(state, message).ConfigureAwait(false); break;
                case InboxSeen seen: Index(seen.PeerId, state); state.OnSeen(seen, _next); break;
                case UserRecord user: state.OnUser(user, _next); break;
            }
        }
        state.Held.Clear();
        state.Complete(state.Issue(_next));
        foreach (var request in waiting!) Attach(state, request);
        if (state.Subscriptions.Count == 0) state.RetainUntilMs = Environment.TickCount64 + _retainMs;
    }

    /// <summary>Gives a new subscriber what it lacks: the changes after its <c>since</c> when this inbox can tell them, else
    /// a snapshot; from then on it gets every change.</summary>
    private void Attach(InboxState state, SubscribeRequest request)
    {
        if (request.Since is { } since && state.CanResume(since, _nodeId))
        {
            foreach (var change in state.ChangesSince(since)) request.Subscription.Deliver(InboxMessages.Delta(change));
        }
        else request.Subscription.Deliver(InboxMessages.Snapshot(state.Issue(_next), state.Visible()));
        state.Subscriptions.Add(request.Subscription);
        _bySubscription[request.Subscription] = state;
        request.Done.TrySetResult(null);
    }

    private void Unsubscribe(Subscription subscription)
    {
        if (_bySubscription.Remove(subscription, out var state))
        {
            state.Subscriptions.Remove(subscription);
            if (state.Subscriptions.Count == 0) state.RetainUntilMs = Environment.TickCount64 + _retainMs;
            return;
        }
        foreach (var waiting in _loading.Values)
        {
            var index = waiting.FindIndex(r => ReferenceEquals(r.Subscription, subscription));
            if (index < 0) continue;
            waiting[index].Done.TrySetResult("connection closing");
            waiting.RemoveAt(index);
            return;
        }
    }

    private void SweepRetained()
    {
        var now = Environment.TickCount64;
        foreach (var state in _states.Values)
        {
            if (!state.IsLoaded || state.Subscriptions.Count > 0 || state.RetainUntilMs > now) continue;
            _states.TryRemove(state.UserId, out _);
            foreach (var peerId in state.Entries.Keys) Unindex(peerId, state);
        }
        if (_states.IsEmpty) _tap.Detach(_router);
    }

    // After a backplane gap: every inbox read so far is dropped, so that the next subscription of each user reads the store
    // again; one being read is read once more when its read ends (it may have started before the outage ended).
    private void Forget()
    {
        foreach (var state in _states.Values)
        {
            if (!state.IsLoaded)
            {
                _readBeforeGap.Add(state);
                continue;
            }
            _states.TryRemove(state.UserId, out _);
            foreach (var peerId in state.Entries.Keys) Unindex(peerId, state);
            foreach (var subscription in state.Subscriptions) _bySubscription.Remove(subscription);
        }
        if (_states.IsEmpty) _tap.Detach(_router);
    }

    private void Index(string peerId, InboxState state)
    {
        var states = _byPeer.GetOrAdd(peerId, static _ => []);
        if (!states.Contains(state)) states.Add(state);
    }

    private void Unindex(string peerId, InboxState state)
    {
        if (!_byPeer.TryGetValue(peerId, out var states)) return;
        states.Remove(state);
        if (states.Count == 0) _byPeer.TryRemove(peerId, out _);
    }

    private async ValueTask<UserRecord?> FindUserAsync(string userId)
    {
        try
        {
            return await _users.FindAsync(userId, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or System.Data.Common.DbException)
        {
            return null;                                               // named by its id until a user event names it
        }
    }

    private sealed record SubscribeRequest(string UserId, Subscription Subscription, long? Since)
    {
        public TaskCompletionSource<string?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record Ended(Subscription Subscription);

    private sealed record Loaded(InboxState State, InboxLoad? Load, string? Error);

    private sealed record PresenceChanged(string UserId);

    private sealed class Sweep
    {
        public static readonly Sweep Instance = new();
    }

    private sealed class Gap
    {
        public static readonly Gap Instance = new();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 650, Level = LogLevel.Warning, Message = "the inbox of {UserId} could not be read")]
        public static partial void LoadFailed(ILogger logger, Exception exception, string userId);

        [LoggerMessage(EventId = 651, Level = LogLevel.Error, Message = "an inbox event ({Event}) failed")]
        public static partial void EventFailed(ILogger logger, Exception exception, string @event);
    }
}
