using System.Buffers;
using System.Text;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>A STOMP session driven through an in-memory transport: the session core without a socket or a host.</summary>
public sealed class StompSessionTests : IAsyncDisposable
{
    private const string Key = "session-tests-signing-key-0123456789abcdef";
    private readonly InMemoryTransport _transport = new();
    private readonly HeldHandler _handler = new();
    private readonly ScriptedReplay _replay = new();
    private readonly BrokerServices _services;
    private readonly StompSession _session;
    private readonly Task _run;
    private readonly InMemoryStompClient _client;

    public StompSessionTests()
    {
        _services = SessionServices.Create(new BrokerOptions(), Key, [_handler], [_replay]);
        _session = new StompSession(_transport, _services, "s1", null);
        _client = new InMemoryStompClient(_transport);
        _run = _session.RunAsync();
    }

    private Task SendAsync(string wire) => _client.SendAsync(wire);

    private Task<StompFrame> ReceiveAsync() => _client.ReceiveAsync();

    private async Task ConnectAsync()
    {
        var token = new JwtIssuer(Microsoft.Extensions.Options.Options.Create(new AuthOptions { SigningKey = Key })).Issue("u1", "client", "U", TimeSpan.FromHours(1));
        await SendAsync($"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0");
        Assert.Equal(StompCommand.Connected, (await ReceiveAsync()).Command);
    }

    [Fact]
    public async Task Disconnect_ItsReceiptWaitsForTheStoredSendBeforeIt()
    {
        await ConnectAsync();
        await SendAsync("SEND\ndestination:/topic/stored/a\nreceipt:s1\n\nhello\0DISCONNECT\nreceipt:d1\n\n\0");
        await _handler.Started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(100);
        Assert.False(_transport.Sent.TryPeek(out _));                   // neither answered while the commit is pending
        _handler.Commit();
        var first = await ReceiveAsync();
        var second = await ReceiveAsync();
        Assert.Equal("s1", first.Headers["receipt-id"]);
        Assert.Equal("d1", second.Headers["receipt-id"]);
        await _run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(DisconnectReason.ClientClosed, _transport.ClosedWith);
    }

    [Fact]
    public async Task Commit_StoredSendsAnsweredAfterTheirCommit_AndBeforeTheCommitReceipt()
    {
        await ConnectAsync();
        await SendAsync("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/topic/plain\ntransaction:t\nreceipt:p1\n\nx\0"
            + "SEND\ndestination:/topic/stored/a\ntransaction:t\nreceipt:s1\n\ny\0");
        Assert.Equal("p1", (await ReceiveAsync()).Headers["receipt-id"]);  // not stored: answered on arrival
        await SendAsync("COMMIT\ntransaction:t\nreceipt:c1\n\n\0");
        await _handler.Started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        _handler.Commit();
        Assert.Equal("s1", (await ReceiveAsync()).Headers["receipt-id"]);
        Assert.Equal("c1", (await ReceiveAsync()).Headers["receipt-id"]);
    }

    [Fact]
    public async Task Abort_StoredSendIsToldItWasDropped_WithItsReceiptId()
    {
        await ConnectAsync();
        await SendAsync("SUBSCRIBE\nid:e\ndestination:/user/queue/errors\nreceipt:sub\n\n\0");
        Assert.Equal("sub", (await ReceiveAsync()).Headers["receipt-id"]);
        await SendAsync("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/topic/stored/a\ntransaction:t\nreceipt:s1\n\ny\0ABORT\ntransaction:t\nreceipt:a1\n\n\0");
        var dropped = await ReceiveAsync();
        Assert.Equal(StompCommand.Message, dropped.Command);
        Assert.Equal("s1", dropped.Headers["receipt-id"]);
        Assert.Equal("could-not-send-message: transaction aborted", dropped.Headers["message"]);
        Assert.Equal("a1", (await ReceiveAsync()).Headers["receipt-id"]);
        Assert.False(_handler.Started.Task.IsCompleted);
    }

    [Theory]
    [InlineData("/topic")]
    [InlineData("/something/interesting")]
    [InlineData("/queue/a")]
    [InlineData("/topic//a")]
    public async Task Send_ToAnInvalidDestination_IsAnError_LikeSubscribe(string destination)
    {
        await ConnectAsync();
        await SendAsync($"SEND\ndestination:{destination}\nreceipt:r\n\nx\0");
        var error = await ReceiveAsync();
        Assert.Equal(StompCommand.Error, error.Command);
        Assert.Equal("r", error.Headers["receipt-id"]);
        Assert.Equal(Destination.Parse(destination, out var reason) is null ? reason.ToMessage() : "", error.Headers["message"]);
        await _run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(DisconnectReason.ProtocolError, _session.Reason);
    }

    [Fact]
    public async Task SubscribeSince_ReplaysThenGoesLive_NoGapNoDuplicateAtTheHandOff()
    {
        await ConnectAsync();
        // Stored: 1, 2, 3. While the replay is being read, 3 (already in it) and 4 (new) are published live.
        _replay.Stored = [Message(1), Message(2), Message(3)];
        _replay.DuringReplay = () =>
        {
            _services.Backplane.Publish(Message(3));
            _services.Backplane.Publish(Message(4));
        };
        await SendAsync("SUBSCRIBE\nid:s\ndestination:/topic/stored/a\nsince:0\nreceipt:r\n\n\0");
        var frames = new List<StompFrame>();
        for (var i = 0; i < 5; i++) frames.Add(await ReceiveAsync());
        Assert.Equal(["1", "2", "3", "4"], frames.Take(4).Select(f => f.Headers["message-id"]));
        Assert.Equal(["true", "true", "true", null], frames.Take(4).Select(f => f.Headers["replay"]));
        Assert.Equal("r", frames[4].Headers["receipt-id"]);
        _services.Backplane.Publish(Message(5));
        var live = await ReceiveAsync();
        Assert.Equal("5", live.Headers["message-id"]);
        Assert.Null(live.Headers["replay"]);
    }

    [Fact]
    public async Task SubscribeSince_OverTheMaximum_SaysWhereTheRestStarts()
    {
        await ConnectAsync();
        _replay.Stored = [Message(1), Message(2), Message(3)];
        _replay.Max = 2;
        await SendAsync("SUBSCRIBE\nid:s\ndestination:/topic/stored/a\nsince:0\n\n\0");
        Assert.Equal("1", (await ReceiveAsync()).Headers["message-id"]);
        Assert.Equal("2", (await ReceiveAsync()).Headers["message-id"]);
        var notice = await ReceiveAsync();
        Assert.Equal("truncated", notice.Headers["replay"]);
        Assert.Equal("3", notice.Headers["replay-next"]);
    }

    [Theory]
    [InlineData("/topic/plain", "since:0", "since is only for stored destinations (chat conversations, /user/queue/inbox)")]
    [InlineData("/topic/stored/a", "since:-1", "invalid since header: a message id (0 for everything)")]
    [InlineData("/topic/stored/a", "since:x", "invalid since header: a message id (0 for everything)")]
    public async Task SubscribeSince_Refused(string destination, string since, string message)
    {
        await ConnectAsync();
        await SendAsync($"SUBSCRIBE\nid:s\ndestination:{destination}\n{since}\nreceipt:r\n\n\0");
        var error = await ReceiveAsync();
        Assert.Equal(StompCommand.Error, error.Command);
        Assert.Equal(message, error.Headers["message"]);
        Assert.Equal("r", error.Headers["receipt-id"]);
    }

    [Fact]
    public async Task RejectedSendWithReceipt_NoErrorsSubscription_IsAnErrorNotSilence()
    {
        await ConnectAsync();
        await SendAsync("SEND\ndestination:/topic/a/*\nreceipt:w\n\nx\0");
        var error = await ReceiveAsync();
        Assert.Equal(StompCommand.Error, error.Command);
        Assert.Equal("w", error.Headers["receipt-id"]);
        Assert.Equal("could-not-send-message: cannot send to a wildcard destination", error.Headers["message"]);
        await _run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Shutdown_ReceiptsOfWhatCommitsMeanwhile_ComeBeforeTheShutdownError()
    {
        await ConnectAsync();
        await SendAsync("SEND\ndestination:/topic/stored/a\nreceipt:s1\n\nhello\0");
        await _handler.Started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var shutdown = _session.ShutdownAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(100);
        Assert.False(shutdown.IsCompleted);                                // waits for the commit
        _handler.Commit();
        await shutdown.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("s1", (await ReceiveAsync()).Headers["receipt-id"]);
        var error = await ReceiveAsync();
        Assert.Equal(StompCommand.Error, error.Command);
        Assert.Equal("server shutting down", error.Headers["message"]);
    }

    [Fact]
    public async Task PrefetchCount_BoundsTheUnacknowledged_LaterMessagesWaitForAcks()
    {
        await ConnectAsync();
        await SendAsync("SUBSCRIBE\nid:s\ndestination:/topic/work\nack:client-individual\nprefetch-count:2\nreceipt:r\n\n\0");
        Assert.Equal("r", (await ReceiveAsync()).Headers["receipt-id"]);
        for (var i = 1; i <= 5; i++) _services.Backplane.Publish(SharedMessage.Create(i, "/topic/work", [], Encoding.UTF8.GetBytes("w" + i)));
        var first = await ReceiveAsync();
        var second = await ReceiveAsync();
        Assert.Equal(["w1", "w2"], new[] { first.BodyText, second.BodyText });
        await Task.Delay(200);
        Assert.False(_transport.Sent.TryPeek(out _));                   // the window is full: nothing more, nobody cut
        await SendAsync($"ACK\nid:{first.Headers["ack"]}\n\n\0");
        Assert.Equal("w3", (await ReceiveAsync()).BodyText);
        await SendAsync($"ACK\nid:{second.Headers["ack"]}\n\n\0");
        Assert.Equal("w4", (await ReceiveAsync()).BodyText);
        Assert.Null(_session.Reason);
    }

    private static SharedMessage Message(long id) => SharedMessage.Create(id, "/topic/stored/a", [], Encoding.UTF8.GetBytes("m" + id));

    public async ValueTask DisposeAsync()
    {
        _session.Abort(DisconnectReason.ClientClosed);
        await _run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>Replays what the test stored, and runs what the test wants while "reading" it.</summary>
    private sealed class ScriptedReplay : IReplaySource
    {
        public SharedMessage[] Stored { get; set; } = [];
        public int Max { get; set; } = 100;
        public Action? DuringReplay { get; set; }

        public bool CanReplay(Destination destination) => destination.Text.StartsWith("/topic/stored/", StringComparison.Ordinal);

        public Task<ReplayPage> ReplayAsync(Destination destination, long sinceId, CancellationToken cancellationToken)
        {
            DuringReplay?.Invoke();
            var after = Stored.Where(m => m.Id > sinceId).ToArray();
            return Task.FromResult(new ReplayPage([.. after.Take(Max)], after.Length > Max ? after[Max].Id : null));
        }
    }

    /// <summary>Takes SENDs to /topic/stored/… and answers them only when the test says the commit happened.</summary>
    private sealed class HeldHandler : ISendHandler
    {
        private readonly List<SendContext> _held = [];
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Handles(Destination destination) => destination.Text.StartsWith("/topic/stored/", StringComparison.Ordinal);

        public ValueTask HandleAsync(SendContext context)
        {
            lock (_held) _held.Add(context);
            Started.TrySetResult();
            return ValueTask.CompletedTask;
        }

        public void Commit()
        {
            lock (_held) foreach (var context in _held) context.Receipt();
        }
    }
}
