using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>Long-lived sessions (docs/design.md §3): the in-band token refresh (SEND to <c>/session/token</c>) and the
/// expiry of a session whose token was not refreshed, driven through in-memory transports with
/// <c>Auth:ClockSkewSeconds=0</c>. The scanner does not run here: the tests call <c>CheckTimeouts</c> as it would.</summary>
public sealed class TokenLifetimeTests : IAsyncDisposable
{
    private const string Key = "token-lifetime-tests-signing-key-0123456789";
    private readonly HeldSendTransport _transport = new();
    private readonly BrokerServices _services;
    private readonly StompSession _session;
    private readonly InMemoryStompClient _client;
    private readonly Task _run;

    public TokenLifetimeTests()
    {
        _services = SessionServices.Create(new BrokerOptions(), Key, clockSkewSeconds: 0);
        _session = new StompSession(_transport, _services, "s1", null);
        _client = new InMemoryStompClient(_transport.Inner);
        _run = _session.RunAsync();
    }

    private static string Token(string user, TimeSpan lifetime, string role = "client", string key = Key) =>
        new JwtIssuer(Microsoft.Extensions.Options.Options.Create(new AuthOptions { SigningKey = key })).Issue(user, role, user, lifetime);

    private async Task ConnectAsync(TimeSpan lifetime)
    {
        await _client.SendAsync($"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {Token("u1", lifetime)}\n\n\0");
        Assert.Equal(StompCommand.Connected, (await _client.ReceiveAsync()).Command);
    }

    private async Task<StompFrame> RoundTripAsync(string wire)
    {
        await _client.SendAsync(wire);
        return await _client.ReceiveAsync();
    }

    /// <summary>Waits until the session's token has expired on its clock (exp has whole seconds: up to a second early).</summary>
    private async Task PastExpiryAsync()
    {
        var expiresAt = _session.Clock.ExpiresAtMs;
        Assert.True(expiresAt - Environment.TickCount64 < 7000, "the token expires within the test");
        while (Environment.TickCount64 < expiresAt) await Task.Delay(20);
    }

    [Theory]
    [InlineData("authorization")]
    [InlineData("Authorization")]
    [InlineData("AUTHORIZATION")]
    public async Task Refresh_ALaterTokenOfTheSameUser_IsReceipted_AndTheSessionGoesOnUnderIt(string headerName)
    {
        await ConnectAsync(TimeSpan.FromHours(1));
        var before = _session.Principal!;
        var refreshed = await RoundTripAsync($"SEND\ndestination:/session/token\n{headerName}:Bearer {Token("u1", TimeSpan.FromHours(2), role: "admin")}\nreceipt:t1\n\n\0");
        Assert.Equal((StompCommand.Receipt, "t1"), (refreshed.Command, refreshed.Headers["receipt-id"]));
        Assert.True(_session.Principal!.ExpiresAt > before.ExpiresAt.AddMinutes(30));
        Assert.Equal(("u1", "admin"), (_session.Principal.UserId, _session.Principal.Role));   // the new token's claims
        Assert.Equal("alive", (await RoundTripAsync("SEND\ndestination:/topic/a\nreceipt:alive\n\nx\0")).Headers["receipt-id"]);
    }

    [Fact]
    public async Task Refresh_WithoutReceipt_AnswersNothing_AndRoutesNothing()
    {
        await ConnectAsync(TimeSpan.FromHours(1));
        await _client.SendAsync("SUBSCRIBE\nid:all\ndestination:/topic/#\n\n\0");
        await _client.SendAsync($"SEND\ndestination:/session/token\nauthorization:Bearer {Token("u1", TimeSpan.FromHours(2))}\n\nbody is ignored\0");
        var next = await RoundTripAsync("SEND\ndestination:/topic/a\nreceipt:after\n\nx\0");
        Assert.Equal(StompCommand.Message, next.Command);                  // the SEND to /topic/a, not the refresh
        Assert.Equal("/topic/a", next.Headers["destination"]);
        Assert.Equal("after", (await _client.ReceiveAsync()).Headers["receipt-id"]);
    }

    public static TheoryData<string, string> Refusals => new()
    {
        { "another user", "token refresh refused: the token is for another user" },
        { "earlier", "token refresh refused: the token does not expire later than the current one" },
        { "same exp", "token refresh refused: the token does not expire later than the current one" },
        { "expired", "token refresh refused: token expired" },
        { "garbage", "token refresh refused: malformed token" },
        { "other key", "token refresh refused: invalid signature" },
        { "no header", "token refresh refused: send the new token as authorization:Bearer <JWT>" },
        { "not bearer", "token refresh refused: send the new token as authorization:Bearer <JWT>" },
        { "transaction", "token refresh refused: a refresh cannot be part of a transaction" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Refresh_Refused_IsAnErrorWithTheReceiptId_AndTheSessionCloses(string kind, string message)
    {
        var current = Token("u1", TimeSpan.FromHours(1));
        await _client.SendAsync($"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {current}\n\n\0");
        Assert.Equal(StompCommand.Connected, (await _client.ReceiveAsync()).Command);
        var header = kind switch
        {
            "another user" => "authorization:Bearer " + Token("u2", TimeSpan.FromHours(2)),
            "earlier" => "authorization:Bearer " + Token("u1", TimeSpan.FromMinutes(30)),
            "same exp" => "authorization:Bearer " + current,
            "expired" => "authorization:Bearer " + Token("u1", TimeSpan.FromMinutes(-5)),
            "garbage" => "authorization:Bearer not-a-jwt",
            "other key" => "authorization:Bearer " + Token("u1", TimeSpan.FromHours(2), key: new string('k', 40)),
            "no header" => "x-token:" + Token("u1", TimeSpan.FromHours(2)),
            "not bearer" => "authorization:Basic dTE6cHc=",
            _ => "transaction:tx\nauthorization:Bearer " + Token("u1", TimeSpan.FromHours(2)),
        };
        if (kind == "transaction") await _client.SendAsync("BEGIN\ntransaction:tx\n\n\0");
        await _client.SendAsync($"SEND\ndestination:/session/token\n{header}\nreceipt:t1\n\n\0");
        var error = Assert.Single(await _client.ReceiveUntilClosedAsync());
        Assert.Equal((StompCommand.Error, message, "t1"), (error.Command, error.Headers["message"], error.Headers["receipt-id"]));
        await _run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(DisconnectReason.AuthenticationFailed, _session.Reason);
    }

    [Fact]
    public async Task Subscribe_ToSessionToken_IsAnError()
    {
        await ConnectAsync(TimeSpan.FromHours(1));
        await _client.SendAsync("SUBSCRIBE\nid:t\ndestination:/session/token\nreceipt:s\n\n\0");
        var error = Assert.Single(await _client.ReceiveUntilClosedAsync());
        Assert.Equal(("cannot subscribe to /session/token: SEND a new token to it", "s"), (error.Headers["message"], error.Headers["receipt-id"]));
    }

    [Fact]
    public async Task Expiry_AnIdleSession_IsToldTokenExpiredAtTheScan_AndClosed()
    {
        await ConnectAsync(TimeSpan.FromSeconds(5));
        _session.CheckTimeouts(Environment.TickCount64);
        Assert.Null(_session.Reason);                                       // not yet
        await PastExpiryAsync();
        _session.CheckTimeouts(Environment.TickCount64);
        var error = Assert.Single(await _client.ReceiveUntilClosedAsync());
        Assert.Equal((StompCommand.Error, "token expired"), (error.Command, error.Headers["message"]));
        Assert.Equal(DisconnectReason.TokenExpired, _transport.Inner.ClosedWith);
        Assert.Equal(DisconnectReason.TokenExpired, _session.Reason);
    }

    [Fact]
    public async Task Expiry_RefreshedInTime_TheSessionLivesPastTheFirstTokensExpiry()
    {
        await ConnectAsync(TimeSpan.FromSeconds(5));
        var firstExpiry = _session.Clock.ExpiresAtMs;
        Assert.Equal("t1", (await RoundTripAsync($"SEND\ndestination:/session/token\nauthorization:Bearer {Token("u1", TimeSpan.FromHours(1))}\nreceipt:t1\n\n\0")).Headers["receipt-id"]);
        while (Environment.TickCount64 < firstExpiry) await Task.Delay(20);
        _session.CheckTimeouts(Environment.TickCount64);
        Assert.Equal("alive", (await RoundTripAsync("SEND\ndestination:/topic/a\nreceipt:alive\n\nx\0")).Headers["receipt-id"]);
        Assert.Null(_session.Reason);
    }

    [Fact]
    public async Task Expiry_DeliveriesQueuedBeforeTheInstant_AreNotSentAfterIt()
    {
        await ConnectAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("sub", (await RoundTripAsync("SUBSCRIBE\nid:s\ndestination:/topic/a\nreceipt:sub\n\n\0")).Headers["receipt-id"]);
        // The client stops reading: the writer hands m1 to the socket (before the instant) and waits there; m2 and m3 queue.
        _transport.Hold();
        Publish("m1");
        await _transport.SendEntered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Publish("m2");
        Publish("m3");
        await PastExpiryAsync();
        _transport.Release();                                               // the scanner has not looked: the writer must not send
        var frames = await _client.ReceiveUntilClosedAsync();
        Assert.Equal(["MESSAGE m1", "ERROR token expired"], frames.Select(f => f.Command == StompCommand.Message ? "MESSAGE " + f.BodyText : "ERROR " + f.Headers["message"]));
        Assert.Equal(DisconnectReason.TokenExpired, _transport.Inner.ClosedWith);
    }

    [Theory]
    [InlineData("SEND\ndestination:/topic/a\nreceipt:late\n\nx\0")]
    [InlineData("SEND\ndestination:/session/token\nauthorization:Bearer {token}\nreceipt:late\n\n\0")]
    public async Task Expiry_AFrameThatArrivesAfterTheInstant_IsNotHandled_EvenARefresh(string wire)
    {
        await ConnectAsync(TimeSpan.FromSeconds(5));
        await PastExpiryAsync();
        await _client.SendAsync(wire.Replace("{token}", Token("u1", TimeSpan.FromHours(1)), StringComparison.Ordinal));
        var error = Assert.Single(await _client.ReceiveUntilClosedAsync());
        Assert.Equal(("token expired", null), (error.Headers["message"], error.Headers["receipt-id"]));
        Assert.Equal(DisconnectReason.TokenExpired, _session.Reason);
    }

    [Fact]
    public async Task Expiry_RawTopicUrl_JsonErrorThenCloseCode4001()
    {
        var (principal, _) = await _services.Jwt.ValidateAsync(Token("u1", TimeSpan.FromSeconds(5)));
        var transport = new InMemoryTransport();
        var raw = new RawTopicSession(transport, _services, "r1", Destination.Of("/topic/a"), principal!);
        var run = raw.RunAsync();
        while (Environment.TickCount64 < raw.Clock.ExpiresAtMs) await Task.Delay(20);
        raw.CheckTimeouts(Environment.TickCount64);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        var sent = await transport.Sent.ReadAllAsync().Select(m => Encoding.UTF8.GetString(m.Payload)).ToListAsync();
        Assert.Equal("token expired", JsonDocument.Parse(Assert.Single(sent)).RootElement.GetProperty("error").GetString());
        Assert.Equal(DisconnectReason.TokenExpired, transport.ClosedWith);
        Assert.Equal((WebSocketCloseStatus)4001, DisconnectReason.TokenExpired.ToCloseStatus());
        Assert.Equal("token expired", DisconnectReason.TokenExpired.Description());
    }

    private void Publish(string body) =>
        _services.Backplane.Publish(SharedMessage.Create(_services.Ids.Next(), "/topic/a", [], Encoding.UTF8.GetBytes(body)));

    public async ValueTask DisposeAsync()
    {
        _transport.Release();
        _session.Abort(DisconnectReason.ClientClosed);
        await _run.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
