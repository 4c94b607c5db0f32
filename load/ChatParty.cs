using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using WsBroker.Protocol;

namespace WsBroker.Load;

/// <summary>
/// One chat connection of the failover scenario that behaves as a careful client should (web-js and tests/js do the same):
/// every message has a <c>client-msg-id</c> and a receipt; on every reconnect it subscribes with <c>since:</c> the last
/// message id it holds and resends, with the same <c>client-msg-id</c>, every message that has no RECEIPT yet. It keeps
/// everything it receives as-is (no client-side dedup), so a duplicate or a reordering by the broker is counted.
/// </summary>
internal sealed class ChatParty
{
    private const string ErrorsDestination = "/user/queue/errors";
    private readonly LoadOptions _options;
    private readonly string _token;
    private readonly string _prefix;
    private readonly string[] _sendTo;
    private readonly RunStats _stats;
    private readonly SemaphoreSlim _credits;
    private readonly SemaphoreSlim _gate = new(1, 1);              // a send of a new message vs. the resends at a reconnect
    private readonly Lock _state = new();
    private readonly Dictionary<string, (long Seq, long Ticks)> _pending = [];
    private readonly Dictionary<string, long> _confirmed = [];
    private readonly Dictionary<long, string?> _held = [];
    private readonly List<(long Dropped, long Connected)> _reconnects = [];
    private LoadConnection? _connection;
    private int _urlIndex;
    private long _lastId;
    private long _produced;

    public ChatParty(LoadOptions options, string user, string token, string subscribeTo, string[] sendTo, int urlIndex, string prefix, RunStats stats)
    {
        _options = options;
        User = user;
        _token = token;
        SubscribeTo = subscribeTo;
        _sendTo = sendTo;
        _urlIndex = urlIndex % options.Urls.Count;
        _prefix = prefix;
        _stats = stats;
        _credits = new SemaphoreSlim(options.InFlight);
    }

    public string User { get; }
    public string SubscribeTo { get; }
    public int Connections { get; private set; }
    public long Resends { get; private set; }
    public long Duplicates { get; private set; }
    public long OutOfOrder { get; private set; }
    public long Rejected { get; private set; }
    public long Truncated { get; private set; }
    public long ReceiptMismatches { get; private set; }
    public long Errors { get; private set; }
    public string? LastError { get; private set; }

    /// <summary>The client-msg-ids this party created (each sent at least once unless the run ended while it was away).</summary>
    public IEnumerable<string> Produced => Enumerable.Range(0, (int)Interlocked.Read(ref _produced)).Select(Id);

    public int PendingCount { get { lock (_state) return _pending.Count; } }
    public long LastId { get { lock (_state) return _lastId; } }
    public IReadOnlyDictionary<string, long> Confirmed { get { lock (_state) return new Dictionary<string, long>(_confirmed); } }
    public bool Holds(long id) { lock (_state) return _held.ContainsKey(id); }
    public HashSet<string> RejectedIds { get; } = [];

    /// <summary>Each drop and the CONNECTED that followed it (Stopwatch ticks; Connected 0: never back).</summary>
    public IReadOnlyList<(long Dropped, long Connected)> Reconnects { get { lock (_state) return [.. _reconnects]; } }

    private string Id(int seq) => $"{_prefix}-{User}-{seq}";

    /// <summary>Connects, subscribes and resends until <paramref name="stop"/>; a connection that ends moves to the next URL.
    /// Returns once the first connection is subscribed; <see cref="Running"/> is the rest.</summary>
    public async Task StartAsync(CancellationToken stop)
    {
        await ConnectAsync(first: true, stop);
        Running = SuperviseAsync(stop);
    }

    public Task Running { get; private set; } = Task.CompletedTask;

    private async Task SuperviseAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var connection = _connection!;
            await connection.ReceiveLoopAsync(OnFrame, stop);
            var dropped = Stopwatch.GetTimestamp();
            await _gate.WaitAsync(CancellationToken.None);
            _connection = null;
            _gate.Release();
            await connection.DisposeAsync();
            if (stop.IsCancellationRequested) return;
            lock (_state) _reconnects.Add((dropped, 0));
            _urlIndex = (_urlIndex + 1) % _options.Urls.Count;
            // Bounded by the run's hard limit (stop); a node that refuses is skipped for the next.
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await ConnectAsync(first: false, stop);
                    break;
                }
                catch (Exception ex) when (ex is WebSocketException or InvalidOperationException or HttpRequestException
                    or OperationCanceledException or InvalidDataException)
                {
                    LastError = ex.Message;
                    _urlIndex = (_urlIndex + 1) % _options.Urls.Count;
                    await Task.Delay(100, CancellationToken.None);
                }
            }
        }
    }

    /// <summary>CONNECT to the current URL, SUBSCRIBE (with <c>since:</c> after the first time), then resend what is pending.</summary>
    private async Task ConnectAsync(bool first, CancellationToken stop)
    {
        var connection = await LoadConnection.ConnectAsync(_options, _options.Urls[_urlIndex], _token, stop);
        var connected = Stopwatch.GetTimestamp();
        Connections++;
        await _gate.WaitAsync(stop);
        try
        {
            lock (_state)
            {
                if (_reconnects.Count > 0 && _reconnects[^1].Connected == 0) _reconnects[^1] = (_reconnects[^1].Dropped, connected);
            }
            await connection.StartSubscribeAsync(ErrorsDestination, "errors", null, null, stop);
            // The first subscription comes before any message is sent: it needs no replay (and since:0 would replay
            // whatever older runs left in the conversation).
            await connection.StartSubscribeAsync(SubscribeTo, "chat", "sub-chat", first ? null : LastId, stop);
            if (first) await connection.WaitForReceiptAsync("sub-chat", stop);
            _connection = connection;
            (string Id, long Seq)[] resend;
            lock (_state) resend = [.. _pending.Select(p => (p.Key, p.Value.Seq)).OrderBy(p => p.Seq)];
            foreach (var (id, seq) in resend)
            {
                await SendAsync(connection, id, seq, stop);
                Resends++;
            }
        }
        catch (WebSocketException)
        {
            // The new connection died already: its receive loop ends at once and the supervisor moves on.
            _connection ??= connection;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Creates messages at one every <paramref name="interval"/> (catching up when late), at most --inflight without a
    /// RECEIPT, until <paramref name="producing"/> ends or <paramref name="left"/> (the run's --messages) runs out.</summary>
    public async Task ProduceAsync(TimeSpan interval, Func<bool> take, CancellationToken producing)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            for (var seq = 0; !producing.IsCancellationRequested && take(); seq++)
            {
                var wait = Stopwatch.GetElapsedTime(start) - interval * seq;
                if (wait < TimeSpan.Zero) await Task.Delay(-wait, producing);
                await _credits.WaitAsync(producing);
                var id = Id(seq);
                await _gate.WaitAsync(producing);
                try
                {
                    lock (_state) _pending[id] = (seq, Stopwatch.GetTimestamp());
                    Interlocked.Increment(ref _produced);
                    _stats.CountSent();
                    if (_connection is { IsOpen: true } connection) await SendAsync(connection, id, seq, CancellationToken.None);
                }
                finally
                {
                    _gate.Release();
                }
            }
        }
        catch (OperationCanceledException) when (producing.IsCancellationRequested) { }
    }

    private async Task SendAsync(LoadConnection connection, string id, long seq, CancellationToken cancellationToken)
    {
        try
        {
            await connection.SendAsync(_sendTo[seq % _sendTo.Length], Stopwatch.GetTimestamp(), _options.Size, "m:" + id, id, cancellationToken);
        }
        catch (WebSocketException)
        {
            // The socket went away under us: the message stays pending and is resent at the next CONNECTED.
        }
    }

    private void OnFrame(StompFrameView frame)
    {
        switch (frame.Command)
        {
            case StompCommand.Receipt:
                OnReceipt(frame.GetHeaderString("receipt-id"u8), frame.GetHeaderString("message-id"u8));
                break;
            case StompCommand.Message when frame.GetHeaderString("destination"u8) == ErrorsDestination:
                OnRejected(frame.GetHeaderString("receipt-id"u8), frame.GetHeaderString("message"u8));
                break;
            case StompCommand.Message:
                OnMessage(frame);
                break;
            case StompCommand.Error:
                Errors++;
                LastError = frame.GetHeaderString("message"u8);
                _stats.CountError();
                break;
        }
    }

    private void OnReceipt(string? receiptId, string? messageId)
    {
        if (receiptId is null || !receiptId.StartsWith("m:", StringComparison.Ordinal)) return;
        var id = receiptId[2..];
        long.TryParse(messageId, NumberStyles.None, CultureInfo.InvariantCulture, out var stored);
        bool first;
        long sentTicks;
        lock (_state)
        {
            if (_confirmed.TryGetValue(id, out var before) && before != stored) ReceiptMismatches++;
            _confirmed[id] = stored;
            first = _pending.Remove(id, out var pending);
            sentTicks = pending.Ticks;
        }
        if (!first) return;                                         // the RECEIPT of a resend whose first send was answered too
        _stats.Delivered(sentTicks);                                // from the first send: a resend's wait is in its latency
        _credits.Release();
    }

    private void OnRejected(string? receiptId, string? message)
    {
        Rejected++;
        LastError = message;
        _stats.CountError();
        if (receiptId is null || !receiptId.StartsWith("m:", StringComparison.Ordinal)) return;
        bool was;
        lock (_state)
        {
            was = _pending.Remove(receiptId[2..]);
            RejectedIds.Add(receiptId[2..]);
        }
        if (was) _credits.Release();
    }

    private void OnMessage(StompFrameView frame)
    {
        if (frame.GetHeaderString("replay"u8) == "truncated")
        {
            Truncated++;                                            // past Chat:MaxReplay: a real client pages the REST history
            return;
        }
        if (!long.TryParse(frame.GetHeaderString("message-id"u8), NumberStyles.None, CultureInfo.InvariantCulture, out var id)) return;
        var clientMsgId = frame.GetHeaderString("client-msg-id"u8);
        lock (_state)
        {
            if (!_held.TryAdd(id, clientMsgId)) Duplicates++;        // delivered twice to this party
            else if (id < _lastId) OutOfOrder++;
            _lastId = Math.Max(_lastId, id);
        }
    }

    /// <summary>Closes the current connection (the end of the run).</summary>
    public async Task StopAsync()
    {
        await Scenarios.SettledAsync([Running]);
        if (_connection is { } connection) await connection.DisposeAsync();
    }
}
