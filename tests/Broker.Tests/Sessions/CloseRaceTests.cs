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

/// <summary>
/// A session closed by the broker (<see cref="BrokerSession.CloseWithError"/>: a backplane gap, a shutdown, the scanner)
/// while other things happen to it at once: its client keeps sending, messages keep coming, its client closes, its queue
/// is full. Whatever the interleaving, the client gets the ERROR, once, last, and then a close (never a dropped connection
/// without a word, as a cluster test once saw: its client reconnected with no "backplane gap").
/// </summary>
public sealed class CloseRaceTests
{
    private const string Key = "close-race-tests-signing-key-0123456789abcdef";
    private static readonly byte[] Connect = Encoding.UTF8.GetBytes(
        $"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {new JwtIssuer(Microsoft.Extensions.Options.Options.Create(new AuthOptions { SigningKey = Key })).Issue("u1", "client", "U", TimeSpan.FromHours(1))}\n\n\0");

    // The read loop sees the close and ends at once; its end must not complete the outbox before the ERROR is in it.
    [Fact]
    public async Task CloseWithError_WhileTheClientKeepsSending_TheErrorIsAlwaysSentBeforeTheClose()
    {
        var beats = Encoding.UTF8.GetBytes(new string('\n', 16));
        // The client keeps the read loop busy (heart-beats, nothing answered) while the broker closes the session.
        await CloseInRoundsAsync(SessionServices.Create(new BrokerOptions(), Key), 400, subscribe: false, async (transport, _, stop) =>
        {
            while (!stop.IsCancellationRequested)
            {
                try { await transport.Client.WriteAsync(beats); }
                catch (InvalidOperationException) { return; }              // the session aborted: the pipe is completed
            }
        });
    }

    // A delivery that passed the "closing?" check just before the close completed the outbox is refused by it: that is not
    // a slow consumer (which would cut the backlog, the queued ERROR with it, and send "slow consumer" instead or as well),
    // and nothing comes between the ERROR and the close.
    [Fact]
    public async Task CloseWithError_WhileMessagesKeepComing_OneErrorLast_NoSlowConsumer()
    {
        var services = SessionServices.Create(new BrokerOptions(), Key);
        var body = Encoding.UTF8.GetBytes("m");
        long id = 0;
        await CloseInRoundsAsync(services, 300, subscribe: true, async (_, session, stop) =>
        {
            while (!stop.IsCancellationRequested)
            {
                // Paced under the queue's bounds: a slow consumer here would be a real one.
                if (session.QueuedFramesForTests > 256) { await Task.Yield(); continue; }
                services.Backplane.Publish(SharedMessage.Create(Interlocked.Increment(ref id), "/topic/race", [], body));
            }
        });
    }

    // Rounds of: a connected session (subscribed to /topic/race), `alongside` running on another thread until the session
    // is closed with ERROR "backplane gap" (after 0-2 ms), the client reading to the close and answering it. Fails with
    // the rounds whose client was not told exactly that, last.
    private static async Task CloseInRoundsAsync(BrokerServices services, int rounds, bool subscribe,
        Func<InMemoryTransport, StompSession, CancellationToken, Task> alongside)
    {
        var wrong = new List<string>();
        for (var round = 0; round < rounds; round++)
        {
            var (transport, session, client, run) = await ConnectedAsync(services, $"race-{round}");
            if (subscribe)
            {
                await client.SendAsync("SUBSCRIBE\nid:s\ndestination:/topic/race\nreceipt:r\n\n\0");
                Assert.Equal("r", (await client.ReceiveAsync()).Headers["receipt-id"]);
            }
            using var stop = new CancellationTokenSource();
            var other = Task.Run(() => alongside(transport, session, stop.Token));
            await Task.Delay(round % 3);
            session.CloseWithError("backplane gap", null, DisconnectReason.BackplaneGap);
            var frames = await client.ReceiveUntilClosedAsync();
            await stop.CancelAsync();
            await other.WaitAsync(TimeSpan.FromSeconds(10));
            await transport.Client.CompleteAsync();                              // the client answers the close
            await run.WaitAsync(TimeSpan.FromSeconds(10));
            if (Verdict(transport, frames, "backplane gap", expectedMessages: null) is { } why) wrong.Add($"round {round}: {why}");
        }
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {rounds} closes went wrong:\n{string.Join("\n", wrong.Take(5))}");
    }

    // The client closed; its session is still sending what it owed when the broker closes it too (a backplane gap's list
    // was taken before): the late close does nothing, where it used to find the outbox completed and drop the connection.
    [Fact]
    public async Task CloseWithError_AfterTheClientClosed_WhileTheWriterStillSends_TheSessionEndsCleanly()
    {
        var (transport, session, client, run) = await ConnectedHeldAsync(SessionServices.Create(new BrokerOptions(), Key));
        transport.Hold();
        await client.SendAsync("SUBSCRIBE\nid:s\ndestination:/topic/late\nreceipt:r\n\n\0");
        await transport.SendEntered.Task.WaitAsync(TimeSpan.FromSeconds(10));   // the RECEIPT's send is held
        await transport.Inner.Client.CompleteAsync();                            // the client closes
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!session.IsClosing && DateTime.UtcNow < deadline) await Task.Delay(10);   // the read loop ends, its end waits
        Assert.True(session.IsClosing, "the read loop did not end when the client closed");                     // for the writer
        session.CloseWithError("backplane gap", null, DisconnectReason.BackplaneGap);
        transport.Release();
        var frames = await client.ReceiveUntilClosedAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(transport.Inner.Aborted, "the late close dropped the connection");
        Assert.Equal([StompCommand.Receipt], frames.Select(f => f.Command));
        Assert.Equal(DisconnectReason.ClientClosed, transport.Inner.ClosedWith);
    }

    // The queue holds as many frames as its hard cap allows (none refused, so not a slow consumer): the ERROR and the
    // close still go in after them, where they used to count against the cap and the connection was dropped.
    [Fact]
    public async Task CloseWithError_WithTheQueueAtItsHardCap_TheErrorStillGoesOutAfterWhatWasQueued()
    {
        var options = new BrokerOptions { OutboundQueueFrames = 4, OutboundQueueHardCapFrames = 8 };
        var services = SessionServices.Create(options, Key);
        var (transport, session, client, run) = await ConnectedHeldAsync(services);
        await client.SendAsync("SUBSCRIBE\nid:s\ndestination:/topic/capped\nreceipt:r\n\n\0");
        Assert.Equal("r", (await client.ReceiveAsync()).Headers["receipt-id"]);
        transport.Hold();
        services.Backplane.Publish(SharedMessage.Create(1, "/topic/capped", [], "m1"u8.ToArray()));
        await transport.SendEntered.Task.WaitAsync(TimeSpan.FromSeconds(10));   // the writer holds message 1 in its send
        for (var i = 2; i <= 9; i++) services.Backplane.Publish(SharedMessage.Create(i, "/topic/capped", [], Encoding.UTF8.GetBytes($"m{i}")));
        Assert.Equal(8, session.QueuedFramesForTests);                           // at the cap, none refused
        session.CloseWithError("backplane gap", null, DisconnectReason.BackplaneGap);
        transport.Release();
        var frames = await client.ReceiveUntilClosedAsync();
        await transport.Inner.Client.CompleteAsync();                            // the client answers the close
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Null(Verdict(transport.Inner, frames, "backplane gap", expectedMessages: 9));
        Assert.Equal(Enumerable.Range(1, 9).Select(i => $"m{i}"), frames.Take(9).Select(f => f.BodyText));
    }

    // The close's ERROR is the 256th frame of a batch, so its close goes in the next batch; the token expires while that
    // batch is being sent. The writer then finds the session expired before it reads the close: the client was told
    // already, and gets no second ERROR ("token expired") after the first.
    [Fact]
    public async Task CloseWithError_TokenExpiresWhileItsErrorIsBeingSent_NoSecondError()
    {
        var services = SessionServices.Create(new BrokerOptions(), Key);
        var (transport, session, client, run) = await ConnectedHeldAsync(services);
        await client.SendAsync("SUBSCRIBE\nid:s\ndestination:/topic/split\nreceipt:r\n\n\0");
        Assert.Equal("r", (await client.ReceiveAsync()).Headers["receipt-id"]);
        transport.Hold();
        services.Backplane.Publish(SharedMessage.Create(1, "/topic/split", [], "m"u8.ToArray()));
        await transport.SendEntered.Task.WaitAsync(TimeSpan.FromSeconds(10));   // message 1 held in its send
        for (var i = 2; i <= 256; i++) services.Backplane.Publish(SharedMessage.Create(i, "/topic/split", [], "m"u8.ToArray()));
        session.CloseWithError("backplane gap", null, DisconnectReason.BackplaneGap);   // 255 messages and the ERROR: one batch
        transport.ReleaseAndHoldNext();                                          // the next batch (with the ERROR) is held
        // The writer is in the held send of that batch: all read (the ERROR is not counted in the queue, so an empty queue
        // alone came before the writer read it and judged the expiry) and its send started, which comes after that judgement.
        using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            while (session.QueuedFramesForTests > 0 || session.SendPendingSinceMsForTests == 0) await Task.Delay(1, deadline.Token);
        Assert.True(session.ExpireIfDue(long.MaxValue));                         // the token expires meanwhile
        transport.Release();
        var frames = await client.ReceiveUntilClosedAsync();
        await transport.Inner.Client.CompleteAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Null(Verdict(transport.Inner, frames, "backplane gap", expectedMessages: 256));
    }

    // Each session bounds its wait for what it owes by the timeout; the registry's shutdown bounded the whole by the same
    // timeout again, and the two raced: when the outer won, the shutdown threw and skipped its wait for the closes. The
    // timeout is also what the close (ERROR, the client's reply, the session's end: a few thread-pool hops) has before the
    // registry aborts the connection, so it is a second, not less: a busy machine's pool took 200 ms.
    [Fact]
    public async Task Shutdown_WithAnAnswerOwedPastTheTimeout_ClosesWithTheErrorAndDoesNotThrow()
    {
        for (var round = 0; round < 4; round++)
        {
            var services = SessionServices.Create(new BrokerOptions(), Key, [new NeverCommits()]);
            var (transport, _, client, run) = await ConnectedAsync(services, $"shutdown-{round}");
            await client.SendAsync("SEND\ndestination:/topic/stored/a\nreceipt:s1\n\nx\0");
            await Task.Delay(50);                                                  // the SEND is with the handler
            var shutdown = services.Sessions.ShutdownAsync(TimeSpan.FromSeconds(1));
            var frames = await client.ReceiveUntilClosedAsync();
            await transport.Client.CompleteAsync();                              // the client answers the close
            await shutdown.WaitAsync(TimeSpan.FromSeconds(10));                  // and the shutdown waited for it, no throw
            await run.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Null(Verdict(transport, frames, "server shutting down", expectedMessages: null));
        }
    }

    // A plug-in's Unsubscribed throws at the session's end: the session's other subscriptions still leave the router, and
    // the session leaves the registry and ends (it stayed in both, walked by the scanner every second, for good).
    [Fact]
    public async Task SessionEnd_APlugInThatThrowsOnUnsubscribe_TheRestIsStillReleased()
    {
        var services = SessionServices.Create(new BrokerOptions(), Key, subscriptionHandlers: [new ThrowsOnUnsubscribe()]);
        var (transport, session, client, run) = await ConnectedAsync(services, "thrower");
        await client.SendAsync("SUBSCRIBE\nid:t1\ndestination:/topic/kept.1\n\n\0SUBSCRIBE\nid:q\ndestination:/user/queue/thrower\n\n\0"
            + "SUBSCRIBE\nid:t2\ndestination:/topic/kept.2\nreceipt:r\n\n\0");
        Assert.Equal("r", (await client.ReceiveAsync()).Headers["receipt-id"]);
        Assert.Equal(2, services.Router.Count);
        Assert.Contains(session, services.Sessions.All);
        await transport.Client.CompleteAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        await session.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, services.Router.Count);
        Assert.DoesNotContain(session, services.Sessions.All);
    }

    private static async Task<(InMemoryTransport, StompSession, InMemoryStompClient, Task)> ConnectedAsync(BrokerServices services, string id)
    {
        var transport = new InMemoryTransport();
        var session = new StompSession(transport, services, id, null);
        var client = new InMemoryStompClient(transport);
        var run = session.RunAsync();
        await transport.Client.WriteAsync(Connect);
        Assert.Equal(StompCommand.Connected, (await client.ReceiveAsync()).Command);
        return (transport, session, client, run);
    }

    // A connected session whose sends can be held.
    private static async Task<(HeldSendTransport, StompSession, InMemoryStompClient, Task)> ConnectedHeldAsync(BrokerServices services)
    {
        var transport = new HeldSendTransport();
        var session = new StompSession(transport, services, "held", null);
        var client = new InMemoryStompClient(transport.Inner);
        var run = session.RunAsync();
        await transport.Inner.Client.WriteAsync(Connect);
        Assert.Equal(StompCommand.Connected, (await client.ReceiveAsync()).Command);
        return (transport, session, client, run);
    }

    // Null when the session was closed (not dropped) and its last frame, and only ERROR, says `message`.
    private static string? Verdict(InMemoryTransport transport, List<StompFrame> frames, string message, int? expectedMessages)
    {
        var errors = frames.Where(f => f.Command == StompCommand.Error).Select(f => f.Headers["message"]).ToList();
        var ok = !transport.Aborted && transport.ClosedWith is not null && errors.Count == 1 && errors[0] == message
            && frames[^1].Command == StompCommand.Error
            && (expectedMessages is null || frames.Count(f => f.Command == StompCommand.Message) == expectedMessages);
        return ok ? null : $"aborted {transport.Aborted}, closed with {transport.ClosedWith?.ToString() ?? "-"}, "
            + $"{frames.Count} frames ending [{string.Join(", ", frames.TakeLast(3).Select(f => f.Command))}], ERRORs [{string.Join(", ", errors)}]";
    }

    private sealed class ThrowsOnUnsubscribe : ISubscriptionHandler
    {
        public bool Handles(Destination destination) => destination.Text == "/user/queue/thrower";

        public ValueTask<string?> SubscribeAsync(BrokerPrincipal user, Subscription subscription, long? since, CancellationToken cancellationToken) =>
            ValueTask.FromResult<string?>(null);

        public void Unsubscribed(Subscription subscription) => throw new InvalidOperationException("the plug-in failed");
    }

    private sealed class NeverCommits : ISendHandler
    {
        public bool Handles(Destination destination) => destination.Text.StartsWith("/topic/stored/", StringComparison.Ordinal);

        public ValueTask HandleAsync(SendContext context) => ValueTask.CompletedTask;
    }
}
