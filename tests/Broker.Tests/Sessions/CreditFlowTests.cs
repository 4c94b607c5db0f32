using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>Credit flow between sessions over in-memory transports: a subscriber's socket send can be held, so "the client
/// stopped reading" is exact and no timing of a real socket is involved.</summary>
public sealed class CreditFlowTests : IAsyncDisposable
{
    private const string Key = "credit-tests-signing-key-0123456789abcdefgh";
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(10);
    private readonly BrokerServices _services;
    private readonly List<(BrokerSession Session, Task Run)> _sessions = [];

    // FlowControlStallMs far off: these tests hold a subscriber's send and look at the pause itself (the stall has its own).
    public CreditFlowTests() : this(new BrokerOptions { OutboundQueueFrames = 4, OutboundQueueHardCapFrames = 64, SlowConsumerMs = 200, FlowControlStallMs = 60_000 }) { }

    private CreditFlowTests(BrokerOptions brokerOptions) => _services = SessionServices.Create(brokerOptions, Key);

    [Fact]
    public async Task Publisher_AboveHighWater_ItsNextFrameWaitsUntilTheSubscriberDrained()
    {
        var (subscriber, subscriberIo, _, publisherIo) = await PausedPublisherAsync();
        subscriberIo.ReleaseSends();
        Assert.Equal("later", (await publisherIo.ReceiveAsync()).Headers["receipt-id"]);
        var bodies = new List<string>();
        while (bodies.Count < 10) bodies.Add((await subscriberIo.ReceiveAsync()).BodyText);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), bodies);
        Assert.Null(subscriber.Reason);
    }

    [Fact]
    public async Task SubscriberWithNoWriteProgress_CutBySlowConsumerMs_AndItsPublisherReleased()
    {
        var (subscriber, subscriberIo) = await ConnectAsync("sub");
        await subscriberIo.SubscribeAsync("/topic/a");
        var (publisher, publisherIo) = await ConnectAsync("pub");
        await HoldWriterAsync(subscriber, subscriberIo, publisherIo);
        await publisherIo.WriteAsync(string.Concat(Enumerable.Range(1, 9).Select(i => $"SEND\ndestination:/topic/a\n\n{i}\0")));
        await WaitUntilAsync(() => subscriber.QueuedFramesForTests > 4);
        await publisherIo.WriteAsync("SEND\ndestination:/topic/b\nreceipt:later\n\n\0");
        var sendingSince = subscriber.SendPendingSinceMsForTests;
        subscriber.CheckTimeouts(sendingSince + 150);                           // within SlowConsumerMs (200): kept
        Assert.Null(subscriber.Reason);
        subscriber.CheckTimeouts(sendingSince + 250);                           // past it: cut, the publisher released
        Assert.Equal(DisconnectReason.SlowConsumer, subscriber.Reason);
        Assert.Equal("later", (await publisherIo.ReceiveAsync()).Headers["receipt-id"]);
        Assert.Null(publisher.Reason);
    }

    [Fact]
    public async Task SubscriberStalledForFlowControlStallMs_ReleasesItsPublisher_IsKept_AndHoldsItAgainOnceItSends()
    {
        await using var test = new CreditFlowTests(new BrokerOptions
        {
            OutboundQueueFrames = 4, OutboundQueueHardCapFrames = 1024, SlowConsumerMs = 60_000, FlowControlStallMs = 400,
        });
        var (subscriber, subscriberIo) = await test.ConnectAsync("sub");
        await subscriberIo.SubscribeAsync("/topic/a");
        var (publisher, publisherIo) = await test.ConnectAsync("pub");
        await HoldWriterAsync(subscriber, subscriberIo, publisherIo);
        var sendingSince = subscriber.SendPendingSinceMsForTests;
        await publisherIo.WriteAsync(string.Concat(Enumerable.Range(1, 9).Select(i => $"SEND\ndestination:/topic/a\n\n{i}\0")));
        await WaitUntilAsync(() => subscriber.QueuedFramesForTests > 4);
        await publisherIo.WriteAsync("SEND\ndestination:/topic/b\nreceipt:later\n\n\0");
        Assert.Equal("later", (await publisherIo.ReceiveAsync()).Headers["receipt-id"]);
        var releasedAfterMs = Environment.TickCount64 - sendingSince;
        Assert.True(releasedAfterMs >= 400, $"the publisher was released {releasedAfterMs} ms into the stall, before FlowControlStallMs");
        Assert.True(subscriber.IsStalled);
        // Stalled, it holds nobody: a publisher's burst only queues (below the hard cap, before SlowConsumerMs it is kept).
        await publisherIo.WriteAsync(string.Concat(Enumerable.Range(10, 100).Select(i => $"SEND\ndestination:/topic/a\n\n{i}\0"))
            + "SEND\ndestination:/topic/b\nreceipt:unheld\n\n\0");
        Assert.Equal("unheld", (await publisherIo.ReceiveAsync()).Headers["receipt-id"]);
        Assert.Null(subscriber.Reason);
        // Its client reads again: everything arrives in order, and once its sends complete it is no longer stalled.
        subscriberIo.ReleaseSends();
        var bodies = new List<string>();
        while (bodies.Count < 110) bodies.Add((await subscriberIo.ReceiveAsync()).BodyText);
        Assert.Equal(Enumerable.Range(0, 110).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), bodies);
        Assert.False(subscriber.IsStalled);
        Assert.Null(subscriber.Reason);
        Assert.Null(publisher.Reason);
    }

    [Fact]
    public async Task PublishOutsideAReadLoop_NeverWaits_AndTheHardCapCutsAConsumerThatNeverReads()
    {
        var (subscriber, subscriberIo) = await ConnectAsync("sub");
        await subscriberIo.SubscribeAsync("/topic/a");
        subscriberIo.HoldSends();
        // The writer may first take what is queued into its one held send (as many as 64 frames, if it wakes late), so the
        // outbox can fill only after as many as 64 + 65 publishes: 100 was not always enough. The bound leaves room.
        for (var i = 0; i < 1000 && subscriber.Reason is null; i++)
            _services.Backplane.Publish(SharedMessage.Create(_services.Ids.Next(), "/topic/a", [], Encoding.UTF8.GetBytes("x")));
        Assert.Equal(DisconnectReason.SlowConsumer, subscriber.Reason);   // at the hard cap (64), long before SlowConsumerMs
        Assert.True(subscriber.QueuedFramesForTests <= 64);
    }

    [Fact]
    public async Task IdlePublisher_OwesNothing_AndASubscriberBelowHighWaterChargesNobody()
    {
        var (subscriber, subscriberIo) = await ConnectAsync("sub");
        await subscriberIo.SubscribeAsync("/topic/a");
        var (publisher, publisherIo) = await ConnectAsync("pub");
        await publisherIo.WriteAsync("SEND\ndestination:/topic/a\n\nx\0SEND\ndestination:/topic/b\nreceipt:r\n\n\0");
        Assert.Equal("r", (await publisherIo.ReceiveAsync()).Headers["receipt-id"]);
        Assert.Equal("x", (await subscriberIo.ReceiveAsync()).BodyText);
        Assert.True(publisher.WaitForCreditAsync().IsCompletedSuccessfully);
        Assert.True(subscriber.WhenDrained().IsCompletedSuccessfully);
    }

    // A publisher paused for credit is closed by the broker (a shutdown, a backplane gap): its read loop stops waiting and
    // reads its client's answer to the close, so the session ends by its close, not by the abort timer seconds later.
    [Fact]
    public async Task Publisher_PausedForCredit_ClosedByTheBroker_EndsByItsClose()
    {
        var (subscriber, _, publisher, publisherIo) = await PausedPublisherAsync();
        publisher.CloseWithError("server shutting down", null, DisconnectReason.ServerShutdown);
        var error = await publisherIo.ReceiveAsync();
        Assert.Equal("server shutting down", error.Headers["message"]);
        await publisherIo.ClientClosesAsync();                                  // the client answers the close
        await publisher.Completion.WaitAsync(s_wait);
        Assert.False(publisherIo.Aborted, "the session was dropped by its abort timer");
        Assert.Equal(DisconnectReason.ServerShutdown, publisher.Reason);
        Assert.Null(subscriber.Reason);
    }

    private async Task<(StompSession Session, SessionIo Io)> ConnectAsync(string user)
    {
        var io = new SessionIo();
        var session = new StompSession(io, _services, user, null);
        _sessions.Add((session, session.RunAsync()));
        var token = new JwtIssuer(Microsoft.Extensions.Options.Options.Create(new AuthOptions { SigningKey = Key })).Issue(user, "client", user, TimeSpan.FromHours(1));
        await io.WriteAsync($"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0");
        Assert.Equal(StompCommand.Connected, (await io.ReceiveAsync()).Command);
        return (session, io);
    }

    // A subscriber whose client stopped reading holds 9 messages (above its high water, 4) of a publisher, whose next frame
    // (SEND with receipt "later") is not read: the publisher's read loop is paused for credit.
    private async Task<(StompSession Subscriber, SessionIo SubscriberIo, StompSession Publisher, SessionIo PublisherIo)> PausedPublisherAsync()
    {
        var (subscriber, subscriberIo) = await ConnectAsync("sub");
        await subscriberIo.SubscribeAsync("/topic/a");
        var (publisher, publisherIo) = await ConnectAsync("pub");
        await HoldWriterAsync(subscriber, subscriberIo, publisherIo);
        await publisherIo.WriteAsync(string.Concat(Enumerable.Range(1, 9).Select(i => $"SEND\ndestination:/topic/a\n\n{i}\0")));
        await WaitUntilAsync(() => subscriber.QueuedFramesForTests > 4);       // above high water (4)
        await publisherIo.WriteAsync("SEND\ndestination:/topic/b\nreceipt:later\n\n\0");
        await Task.Delay(300);
        Assert.Null(publisherIo.TryTakeFrame());                                // the publisher's read loop is paused
        return (subscriber, subscriberIo, publisher, publisherIo);
    }

    // The subscriber's client stops reading: its writer is held sending message 0, so what follows stays queued.
    private static async Task HoldWriterAsync(BrokerSession subscriber, SessionIo subscriberIo, SessionIo publisherIo)
    {
        subscriberIo.HoldSends();
        await publisherIo.WriteAsync("SEND\ndestination:/topic/a\n\n0\0");
        // In the held send itself: a send pending alone may be the subscription's RECEIPT still on its way out.
        await subscriberIo.SendHeld.WaitAsync(s_wait);
        Assert.True(subscriber.SendPendingSinceMsForTests > 0);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + s_wait;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (session, run) in _sessions)
        {
            session.Abort(DisconnectReason.ClientClosed);
            await run.WaitAsync(s_wait);
        }
    }

    /// <summary>A client over a <see cref="HeldSendTransport"/>: it writes frames and parses what the session sent.</summary>
    private sealed class SessionIo : IConnectionTransport
    {
        private readonly HeldSendTransport _io = new();
        private readonly StompFrameParser _parser = new(StompLimits.Default);
        private byte[] _pending = [];

        public void HoldSends() => _io.Hold();

        /// <summary>Completes once the writer is inside a held send.</summary>
        public Task SendHeld => _io.SendEntered.Task;

        public void ReleaseSends() => _io.Release();

        public async Task ClientClosesAsync() => await _io.Inner.Client.CompleteAsync();

        public bool Aborted => _io.Inner.Aborted;

        public async Task WriteAsync(string wire) => await _io.Inner.Client.WriteAsync(Encoding.UTF8.GetBytes(wire));

        public async Task SubscribeAsync(string destination)
        {
            await WriteAsync($"SUBSCRIBE\nid:1\ndestination:{destination}\nreceipt:sub\n\n\0");
            Assert.Equal("sub", (await ReceiveAsync()).Headers["receipt-id"]);
        }

        public StompFrame? TryTakeFrame()
        {
            while (true)
            {
                var sequence = new ReadOnlySequence<byte>(_pending);
                if (_parser.TryParse(ref sequence, out _) == OperationStatus.Done)
                {
                    var frame = _parser.Frame.ToFrame();
                    _pending = sequence.ToArray();
                    return frame;
                }
                if (!_io.Inner.Sent.TryRead(out var message)) return null;
                _pending = [.. _pending, .. message.Payload];
            }
        }

        public async Task<StompFrame> ReceiveAsync()
        {
            using var timeout = new CancellationTokenSource(s_wait);
            while (true)
            {
                if (TryTakeFrame() is { } frame) return frame;
                await _io.Inner.Sent.WaitToReadAsync(timeout.Token);
            }
        }

        public ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken) => _io.Inner.ReadAsync(cancellationToken);

        public void AdvanceTo(SequencePosition consumed) => _io.Inner.AdvanceTo(consumed);

        public ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken) =>
            _io.SendAsync(message, binary, cancellationToken);

        public ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken) => _io.Inner.CloseAsync(reason, cancellationToken);

        public void KeepAlive(long nowMs) { }

        public void Abort() => _io.Abort();
    }
}
