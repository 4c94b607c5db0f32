using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using WsBroker.Broker.Access;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Tests.Transport;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Engine;

public class StompConnectionTests
{
    [Fact]
    public async Task Connect_WithBearerToken_AnswersConnectedWithTheDocumentedHeaders()
    {
        await using var broker = await TestBroker.StartAsync("Broker:HeartBeatSendMs=5000", "Broker:HeartBeatReceiveMs=7000");
        await using var client = await StompTestClient.OpenAsync(broker.WsUri);
        Assert.Equal("v12.stomp", client.Socket.SubProtocol);
        await client.SendAsync($"CONNECT\naccept-version:1.1,1.2\nhost:x\nheart-beat:0,0\nAuthorization:Bearer {broker.Token("alice")}\n\n\0");
        var connected = await client.ReceiveAsync(StompCommand.Connected);
        Assert.Equal("1.2", connected.Headers["version"]);
        Assert.Equal("5000,7000", connected.Headers["heart-beat"]);
        Assert.Equal("alice", connected.Headers["user-name"]);
        Assert.StartsWith("WsBroker/", connected.Headers["server"]);
        Assert.False(string.IsNullOrEmpty(connected.Headers["session"]));
    }

    [Theory]
    [InlineData("v10.stomp", "1.0")]
    [InlineData("v11.stomp", "1.1")]
    public async Task Connect_OlderSubprotocol_NegotiatesThatVersion(string subProtocol, string version)
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await StompTestClient.OpenAsync(broker.WsUri, subProtocol);
        Assert.Equal(subProtocol, client.Socket.SubProtocol);
        await client.SendAsync($"CONNECT\naccept-version:{version}\nlogin:bob\npasscode:{broker.Token("bob")}\n\n\0");
        Assert.Equal(version, (await client.ReceiveAsync(StompCommand.Connected)).Headers["version"]);
    }

    [Fact]
    public async Task Upgrade_UnsupportedSubprotocol_Is400()
    {
        await using var broker = await TestBroker.StartAsync();
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("mqtt");
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(broker.WsUri, CancellationToken.None).WaitAsync(StompTestClient.Timeout));
        using var http = new HttpClient { BaseAddress = broker.BaseUri };
        var plain = await http.GetAsync("/ws");
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, plain.StatusCode);
        Assert.Equal("application/problem+json", plain.Content.Headers.ContentType?.MediaType);
    }

    public static TheoryData<string, string> BadCredentials => new()
    {
        { "Authorization:Bearer not-a-jwt\n", "authentication failed" },
        { "", "authentication failed: no token" },
        { "login:mallory\npasscode:{token}\n", "authentication failed: login does not match the token" },
        { "Authorization:Bearer {expired}\n", "authentication failed: token expired" },
        { "Authorization:Bearer {forged}\n", "authentication failed: invalid signature" },
    };

    [Theory]
    [MemberData(nameof(BadCredentials))]
    public async Task Connect_BadCredentials_ErrorThenClose(string headers, string message)
    {
        await using var broker = await TestBroker.StartAsync();
        var forged = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["sub"] = "alice", ["role"] = "admin" },
            Expires = DateTime.UtcNow.AddHours(1),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(new byte[40]), SecurityAlgorithms.HmacSha256),
        });
        headers = headers.Replace("{token}", broker.Token("alice")).Replace("{forged}", forged)
            .Replace("{expired}", broker.Token("alice", lifetime: TimeSpan.FromMinutes(-5)));
        await using var client = await StompTestClient.OpenAsync(broker.WsUri);
        await client.SendAsync($"CONNECT\naccept-version:1.2\nreceipt:c1\n{headers}\n\0");
        var frames = await client.ReceiveUntilClosedAsync();
        var error = Assert.Single(frames);
        Assert.Equal(StompCommand.Error, error.Command);
        Assert.StartsWith(message, error.Headers["message"]);
        Assert.Equal("c1", error.Headers["receipt-id"]);
    }

    [Fact]
    public async Task Connect_AccessTokenQueryAndRs256_Accepted()
    {
        using var rsa = RSA.Create(2048);
        var pem = Path.GetTempFileName();
        await File.WriteAllTextAsync(pem, rsa.ExportSubjectPublicKeyInfoPem());
        try
        {
            await using var broker = await TestBroker.StartAsync($"Auth:PublicKeyPath={pem}");
            var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Claims = new Dictionary<string, object> { ["sub"] = "rsa-user", ["role"] = "client", ["name"] = "R" },
                Expires = DateTime.UtcNow.AddHours(1),
                SigningCredentials = new SigningCredentials(new RsaSecurityKey(rsa), SecurityAlgorithms.RsaSha256),
            });
            await using var client = await StompTestClient.OpenAsync(new Uri(broker.WsUri + "?access_token=" + token));
            await client.SendAsync("STOMP\naccept-version:1.2\nhost:x\n\n\0");
            Assert.Equal("rsa-user", (await client.ReceiveAsync(StompCommand.Connected)).Headers["user-name"]);
        }
        finally
        {
            File.Delete(pem);
        }
    }

    [Fact]
    public async Task FirstFrame_NotConnect_ErrorThenClose()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await StompTestClient.OpenAsync(broker.WsUri);
        await client.SendAsync("SEND\ndestination:/topic/a\nreceipt:r9\n\nx\0");
        var error = Assert.Single(await client.ReceiveUntilClosedAsync());
        Assert.Equal("expected CONNECT or STOMP frame", error.Headers["message"]);
        Assert.Equal("r9", error.Headers["receipt-id"]);
    }

    [Fact]
    public async Task Send_ToSubscribers_DeliversMessageWithHeadersAndBody()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var sub = await broker.ConnectAsync("sub");
        await using var pub = await broker.ConnectAsync("pub");
        await sub.SendAsync("SUBSCRIBE\nid:s-1\ndestination:/topic/news\nreceipt:r1\n\n\0");
        await sub.ReceiveAsync(StompCommand.Receipt);
        await pub.SendAsync("SEND\ndestination:/topic/news\ncontent-type:text/plain\nx-trace:a\\cb\nreceipt:p1\ncontent-length:5\n\nhe\0lo\0");
        Assert.Equal("p1", (await pub.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
        var message = await sub.ReceiveAsync(StompCommand.Message);
        Assert.Equal("s-1", message.Headers["subscription"]);
        Assert.Equal("/topic/news", message.Headers["destination"]);
        Assert.Equal("text/plain", message.Headers["content-type"]);
        Assert.Equal("a:b", message.Headers["x-trace"]);
        Assert.Equal("5", message.Headers["content-length"]);
        Assert.Null(message.Headers["receipt"]);
        Assert.True(long.Parse(message.Headers["message-id"]!, System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Equal("he\0lo"u8.ToArray(), message.Body.ToArray());
    }

    /// <summary>Which destination a subscription pattern matches: the router's rule, and the ACL's (see below).</summary>
    public static TheoryData<string, string, bool> WildcardMatches => new()
    {
        { "/topic/a/*", "/topic/a/b", true },
        { "/topic/a/*", "/topic/a/b/c", false },
        { "/topic/a/*", "/topic/a", false },
        { "/topic/a/#", "/topic/a", true },
        { "/topic/a/#", "/topic/a/b/c", true },
        { "/topic/x/*/c", "/topic/x/b/c", true },
        { "/topic/a/b", "/topic/a/bb", false },
    };

    [Theory]
    [MemberData(nameof(WildcardMatches))]
    public async Task Send_WildcardSubscription_MatchesBySegments(string pattern, string destination, bool delivered)
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("w");
        await client.SendAsync($"SUBSCRIBE\nid:1\ndestination:{pattern}\n\n\0SEND\ndestination:{destination}\n\nhit\0SEND\ndestination:/topic/zzz\nreceipt:done\n\n\0");
        var first = await client.ReceiveAsync();
        if (delivered)
        {
            Assert.Equal(StompCommand.Message, first.Command);
            Assert.Equal(destination, first.Headers["destination"]);
            first = await client.ReceiveAsync();
        }
        Assert.Equal(StompCommand.Receipt, first.Command);
    }

    [Fact]
    public async Task Frames_SplitAcrossMessagesAndSeveralInOne_AreAllHandled()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("splitter");
        var wire = Encoding.UTF8.GetBytes("SUBSCRIBE\nid:1\ndestination:/topic/s\n\n\0\nSEND\ndestination:/topic/s\n\none\0\r\nSEND\ndestination:/topic/s\n\ntwo\0SEND\ndestination:/topic/s\nreceipt:r\n\nthree\0");
        await client.SendSplitAsync(wire, 3, 20, 21, 50, 51, 52, 70);
        Assert.Equal("one", (await client.ReceiveAsync(StompCommand.Message)).BodyText);
        Assert.Equal("two", (await client.ReceiveAsync(StompCommand.Message)).BodyText);
        Assert.Equal("three", (await client.ReceiveAsync(StompCommand.Message)).BodyText);
        Assert.Equal(WebSocketMessageType.Text, client.LastMessageType);
        await client.ReceiveAsync(StompCommand.Receipt);
    }

    [Fact]
    public async Task Send_BinaryBody_ArrivesInBinaryWebSocketMessage()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("bin");
        await client.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/b\n\n\0");
        var body = new byte[] { 0xff, 0x00, 0xfe, 0x80 };
        await client.SendAsync([.. "SEND\ndestination:/topic/b\ncontent-length:4\n\n"u8.ToArray(), .. body, 0], WebSocketMessageType.Binary);
        var message = await client.ReceiveAsync(StompCommand.Message);
        Assert.Equal(body, message.Body.ToArray());
        Assert.Equal(WebSocketMessageType.Binary, client.LastMessageType);
    }

    [Fact]
    public async Task Ack_ClientMode_IsCumulative_AndUnknownAckIsAnError()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("acker");
        await client.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/q\nack:client\n\n\0");
        await client.SendAsync("SEND\ndestination:/topic/q\n\na\0SEND\ndestination:/topic/q\n\nb\0SEND\ndestination:/topic/q\n\nc\0");
        var a = await client.ReceiveAsync(StompCommand.Message);
        await client.ReceiveAsync(StompCommand.Message);
        var c = await client.ReceiveAsync(StompCommand.Message);
        Assert.NotNull(a.Headers["ack"]);
        await client.SendAsync($"ACK\nid:{c.Headers["ack"]}\nreceipt:acked\n\n\0");     // acknowledges a, b and c
        await client.ReceiveAsync(StompCommand.Receipt);
        await client.SendAsync($"ACK\nid:{a.Headers["ack"]}\nreceipt:again\n\n\0");
        var error = Assert.Single(await client.ReceiveUntilClosedAsync());
        Assert.Equal("unknown ack id", error.Headers["message"]);
        Assert.Equal("again", error.Headers["receipt-id"]);
    }

    [Fact]
    public async Task Ack_ClientIndividual_SettlesOnlyThatMessage_AndNackSettlesToo()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("individual");
        await client.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/q\nack:client-individual\n\n\0");
        await client.SendAsync("SEND\ndestination:/topic/q\n\na\0SEND\ndestination:/topic/q\n\nb\0");
        var a = await client.ReceiveAsync(StompCommand.Message);
        var b = await client.ReceiveAsync(StompCommand.Message);
        await client.SendAsync($"ACK\nid:{b.Headers["ack"]}\n\n\0NACK\nid:{a.Headers["ack"]}\nreceipt:r\n\n\0");
        await client.ReceiveAsync(StompCommand.Receipt);
        await client.SendAsync($"ACK\nid:{b.Headers["ack"]}\n\n\0");
        Assert.Equal("unknown ack id", Assert.Single(await client.ReceiveUntilClosedAsync()).Headers["message"]);
    }

    [Fact]
    public async Task Transaction_SendsTakeEffectAtCommit_AndAbortDiscardsThem()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("tx");
        await client.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/t\n\n\0");
        await client.SendAsync("BEGIN\ntransaction:t1\n\n\0SEND\ndestination:/topic/t\ntransaction:t1\n\nlost\0ABORT\ntransaction:t1\n\n\0");
        await client.SendAsync("BEGIN\ntransaction:t2\n\n\0SEND\ndestination:/topic/t\ntransaction:t2\n\none\0SEND\ndestination:/topic/t\ntransaction:t2\n\ntwo\0");
        await client.SendAsync("SEND\ndestination:/topic/other\nreceipt:before\n\n\0");
        await client.ReceiveAsync(StompCommand.Receipt);                  // nothing of t1 or t2 arrived before this
        await client.SendAsync("COMMIT\ntransaction:t2\nreceipt:c\n\n\0");
        Assert.Equal("one", (await client.ReceiveAsync(StompCommand.Message)).BodyText);
        Assert.Equal("two", (await client.ReceiveAsync(StompCommand.Message)).BodyText);
        Assert.Equal("c", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
        await client.SendAsync("COMMIT\ntransaction:t2\n\n\0");
        Assert.Equal("unknown transaction", Assert.Single(await client.ReceiveUntilClosedAsync()).Headers["message"]);
    }

    public static TheoryData<string, string, string> LimitViolations => new()
    {
        { "Broker:MaxFrameBytes=1024", "SEND\ndestination:/topic/a\n\n" + new string('x', 2000) + "\0", "frame too large" },
        { "Broker:MaxBodyBytes=100", "SEND\ndestination:/topic/a\ncontent-length:200\n\n" + new string('x', 200) + "\0", "body too large" },
        { "Broker:MaxHeaderCount=4", "SEND\ndestination:/topic/a\na:1\nb:2\nc:3\nd:4\n\n\0", "too many headers" },
        { "Broker:MaxHeaderLineBytes=1024", "SEND\ndestination:/topic/a\nlong:" + new string('y', 2000) + "\n\n\0", "header line too long" },
        { "Broker:MaxSubscriptionsPerSession=2", "SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\0SUBSCRIBE\nid:2\ndestination:/topic/b\n\n\0SUBSCRIBE\nid:3\ndestination:/topic/c\n\n\0", "too many subscriptions" },
        { "Broker:NodeId=1", "FLY\n\n\0", "unknown command" },
        { "Broker:NodeId=1", "SEND\ndestination:/topic/a\nbad:\\t\n\n\0", "invalid header escape sequence" },
        { "Broker:NodeId=1", "SUBSCRIBE\nid:1\ndestination:/topic/a/#/b\n\n\0", "invalid destination: '#' is only allowed as the last segment" },
        { "Broker:NodeId=1", "SUBSCRIBE\nid:1\ndestination:/elsewhere\n\n\0", "unknown destination: use /topic/... or /user/queue/..." },
        { "Broker:NodeId=1", "SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\0SUBSCRIBE\nid:1\ndestination:/topic/b\n\n\0", "duplicate subscription id" },
        { "Broker:NodeId=1", "UNSUBSCRIBE\nid:nope\n\n\0", "unknown subscription id" },
        { "Broker:NodeId=1", "CONNECT\naccept-version:1.2\n\n\0", "already connected" },
    };

    [Theory]
    [MemberData(nameof(LimitViolations))]
    public async Task ProtocolViolation_ErrorWithMessageThenClose(string setting, string wire, string message)
    {
        await using var broker = await TestBroker.StartAsync(setting);
        await using var client = await broker.ConnectAsync("limits");
        await client.SendAsync(wire);
        var frames = await client.ReceiveUntilClosedAsync();
        Assert.Equal(message, frames[^1].Headers["message"]);
        Assert.Equal(StompCommand.Error, frames[^1].Command);
    }

    [Theory]
    [InlineData("Broker:MaxBodyBytes=100", "SEND\ndestination:/topic/a\nreceipt:r1\ncontent-length:200\n\n", "body too large")]
    [InlineData("Broker:MaxHeaderCount=4", "SEND\nreceipt:r1\ndestination:/topic/a\na:1\nb:2\nc:3\n\n\0", "too many headers")]
    public async Task LimitViolation_ReceiptReadBeforeTheError_IsNamedInTheError(string setting, string wire, string message)
    {
        await using var broker = await TestBroker.StartAsync(setting);
        await using var client = await broker.ConnectAsync("limits");
        await client.SendAsync(wire + new string('x', 200) + "\0");
        var error = (await client.ReceiveUntilClosedAsync())[^1];
        Assert.Equal((StompCommand.Error, message, "r1"), (error.Command, error.Headers["message"], error.Headers["receipt-id"]));
    }

    [Fact]
    public async Task Acl_RestrictsSendAndSubscribe_OnTheConfiguredDestinations()
    {
        await using var broker = await TestBroker.StartAsync(
            "Acl:Rules:0:Destination=/topic/org/news/#", "Acl:Rules:0:Subscribe:0=*", "Acl:Rules:0:Send:0=role:admin",
            "Acl:Rules:1:Destination=/topic/org/internal/#", "Acl:Rules:1:Subscribe:0=role:admin", "Acl:Rules:1:Send:0=user:ops");
        await using var admin = await broker.ConnectAsync("admin1", "admin");
        await using var client = await broker.ConnectAsync("client1");
        await client.SendAsync("SUBSCRIBE\nid:n\ndestination:/topic/org/news/#\n\n\0SUBSCRIBE\nid:e\ndestination:/user/queue/errors\nreceipt:r\n\n\0");
        await client.ReceiveUntilReceiptAsync("r");

        // A customer may read the news but not write it; the admin may.
        await client.SendAsync("SEND\ndestination:/topic/org/news/outage\nreceipt:c1\n\nfake\0");
        var rejection = await client.ReceiveAsync(StompCommand.Message);
        Assert.Equal(("/user/queue/errors", "c1"), (rejection.Headers["destination"], rejection.Headers["receipt-id"]));
        Assert.Equal("could-not-send-message: access denied: may not send to /topic/org/news/#", rejection.Headers["message"]);
        await admin.SendAsync("SEND\ndestination:/topic/org/news/outage\nreceipt:a1\n\nplanned outage at 2am\0");
        await admin.ReceiveUntilReceiptAsync("a1");
        Assert.Equal("planned outage at 2am", (await client.ReceiveAsync(StompCommand.Message)).BodyText);

        // /topic/org/# would include /topic/org/internal/..., which only admins may read: the whole subscription is refused.
        await client.SendAsync("SUBSCRIBE\nid:all\ndestination:/topic/org/#\nreceipt:all\n\n\0");
        var error = (await client.ReceiveUntilClosedAsync())[^1];
        Assert.Equal((StompCommand.Error, "access denied: may not subscribe to /topic/org/internal/#", "all"),
            (error.Command, error.Headers["message"], error.Headers["receipt-id"]));
        await admin.SendAsync("SUBSCRIBE\nid:all\ndestination:/topic/org/#\nreceipt:ok\n\n\0");
        await admin.ReceiveUntilReceiptAsync("ok");
    }

    [Fact]
    public async Task Acl_OnAllTopics_LeavesTheChatDestinationsToTheirOwnRules()
    {
        await using var broker = await TestBroker.StartAsync("Chat:DemoUsers=true", "Acl:Rules:0:Destination=/topic/#", "Acl:Rules:0:Subscribe:0=*", "Acl:Rules:0:Send:0=role:admin");
        await using var client = await broker.ConnectAsync("client1");
        await client.SendAsync("SUBSCRIBE\nid:e\ndestination:/user/queue/errors\n\n\0"
            + "SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:chat\n\nstill allowed\0");
        Assert.Empty(await client.ReceiveUntilReceiptAsync("chat"));
        await client.SendAsync("SEND\ndestination:/topic/general\nreceipt:general\n\nnot allowed\0");
        Assert.Equal("could-not-send-message: access denied: may not send to /topic/#", (await client.ReceiveAsync(StompCommand.Message)).Headers["message"]);
    }

    [Theory]
    [InlineData("/topic/news/#", "/topic/news", true)]            // '#' matches zero trailing segments
    [InlineData("/topic/news/#", "/topic/news/a/b", true)]
    [InlineData("/topic/news/#", "/topic/newsletter", false)]
    [InlineData("/topic/#", "/topic/internal/#", true)]
    [InlineData("/topic/*/high", "/topic/alerts/#", true)]
    [InlineData("/topic/*/high", "/topic/alerts/low", false)]
    [InlineData("/topic/a/*", "/topic/a", false)]
    [InlineData("/topic/a/*", "/topic/*/b", true)]
    public void Acl_Overlaps_FollowsTheWildcardRules(string a, string b, bool overlap)
    {
        Assert.Equal(overlap, TopicAcl.Overlaps(a.Split('/'), 0, b.Split('/'), 0));
        Assert.Equal(overlap, TopicAcl.Overlaps(b.Split('/'), 0, a.Split('/'), 0));
    }

    [Theory]
    [MemberData(nameof(WildcardMatches))]
    public void Acl_Overlaps_AgreesWithTheRouterOnConcreteDestinations(string pattern, string destination, bool delivered) =>
        Assert.Equal(delivered, TopicAcl.Overlaps(pattern.Split('/'), 0, destination.Split('/'), 0));

    [Fact]
    public async Task Frame_OneByteAtATime_IsParsed()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("trickle");
        var wire = Encoding.UTF8.GetBytes("SEND\ndestination:/topic/trickle\nreceipt:t\n\n" + new string('x', 300) + "\0");
        foreach (var b in wire) await client.SendAsync(new[] { b });
        Assert.Equal("t", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
    }

    [Fact]
    public async Task Frame_BodyOfNulsOneByteAtATime_IsParsedOnce()
    {
        // A content-length body of NULs, one byte per WebSocket message: every piece could have completed the frame. The
        // parser remembers where the body ends, so this costs linear time and the frame is accepted (it used to be refused
        // past 4096 pieces to bound quadratic re-parsing).
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("trickle");
        await client.SendAsync("SEND\ndestination:/topic/trickle\nreceipt:n\ncontent-length:6000\n\n");
        for (var i = 0; i < 6001; i++) await client.SendAsync(new byte[] { 0 });
        Assert.Equal("n", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
    }

    [Fact]
    public async Task ContentLengthOverTheLimit_RefusedWhenTheHeaderArrives_NotAfterTheBody()
    {
        await using var broker = await TestBroker.StartAsync("Broker:MaxBodyBytes=1024");
        await using var client = await broker.ConnectAsync("big");
        await client.SendAsync("SEND\ndestination:/topic/big\nreceipt:b\ncontent-length:5000\n\n");
        var frames = await client.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(StompCommand.Error, frames[^1].Command);
        Assert.Equal("b", frames[^1].Headers["receipt-id"]);
        Assert.Contains("body", frames[^1].Headers["message"]);
    }

    [Theory]
    [InlineData("0,0")]
    [InlineData("10000,10000")]
    public async Task FrameLeftHalfSent_ClosedAfterThePartialFrameTimeout_WhateverTheHeartBeats(string heartBeat)
    {
        // A header that promises more body than is sent, then silence: the connection must not be held forever.
        await using var broker = await TestBroker.StartAsync("Broker:PartialFrameTimeoutMs=500", "Broker:HeartBeatReceiveMs=10000");
        await using var client = await broker.ConnectAsync("half", heartBeat: heartBeat);
        await client.SendAsync("SEND\ndestination:/topic/half\ncontent-length:100\n\nonly a part");
        var frames = await client.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("frame not completed in time", frames[^1].Headers["message"]);
    }

    [Fact]
    public async Task Stomp10Subscriber_HeaderNameWithColon_IsLeftOut()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var old = await broker.ConnectAsync("old", subProtocol: "v10.stomp");
        await old.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/legacy\nreceipt:s\n\n\0");
        await old.ReceiveUntilReceiptAsync("s");
        await using var sender = await broker.ConnectAsync("new");
        await sender.SendAsync("SEND\ndestination:/topic/legacy\ncontent-length\\c99:x\n\nhi\0");
        var message = await old.ReceiveAsync(StompCommand.Message);
        Assert.Equal("hi", message.BodyText);
        Assert.Equal("2", message.Headers["content-length"]);
    }

    [Fact]
    public async Task UserQueue_ReachesOnlyTheOwnSession()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var a = await broker.ConnectAsync("a");
        await using var b = await broker.ConnectAsync("b");
        await a.SendAsync("SUBSCRIBE\nid:e\ndestination:/user/queue/errors\n\n\0");
        await b.SendAsync("SUBSCRIBE\nid:e\ndestination:/user/queue/errors\nreceipt:rb\n\n\0");
        await b.ReceiveAsync(StompCommand.Receipt);
        await a.SendAsync("SEND\ndestination:/user/queue/errors\nreceipt:x\n\nspoof\0");
        var rejection = await a.ReceiveAsync(StompCommand.Message);
        Assert.Equal("/user/queue/errors", rejection.Headers["destination"]);
        Assert.Equal("x", rejection.Headers["receipt-id"]);
        Assert.StartsWith("could-not-send-message:", rejection.Headers["message"]);
        await b.AssertNoFrameAsync(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Disconnect_WithReceipt_FlushesThenCloses()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("bye");
        await client.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/bye\n\n\0SEND\ndestination:/topic/bye\n\nlast\0DISCONNECT\nreceipt:77\n\n\0");
        var frames = await client.ReceiveUntilClosedAsync();
        Assert.Equal([StompCommand.Message, StompCommand.Receipt], frames.Select(f => f.Command));
        Assert.Equal("77", frames[1].Headers["receipt-id"]);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.Socket.CloseStatus);
    }

    [Fact]
    public async Task SlowConsumer_IsDisconnected_WithoutSlowingThePublisherOrOthers()
    {
        await using var broker = await TestBroker.StartAsync("Broker:OutboundQueueFrames=256", "Broker:OutboundQueueBytes=1048576", "Broker:ShutdownTimeoutMs=1000");
        var sessions = broker.Services.GetRequiredService<SessionRegistry>();
        await using var slow = await broker.ConnectAsync("slow");
        await using var fast = await broker.ConnectAsync("fast");
        await using var publisher = await broker.ConnectAsync("publisher");
        await slow.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/flood\nreceipt:s\n\n\0");
        await slow.ReceiveAsync(StompCommand.Receipt);               // and then never reads again
        await fast.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/flood\nreceipt:f\n\n\0");
        await fast.ReceiveAsync(StompCommand.Receipt);
        var body = new string('x', 4096);
        const int count = 5000;                                      // 20 MB: far more than loopback socket buffers hold
        var received = 0;
        var reader = Task.Run(async () =>
        {
            while (received < count)
            {
                var frame = await fast.ReceiveAsync(TimeSpan.FromSeconds(30));
                if (frame.Command == StompCommand.Message) received++;
            }
        });
        for (var i = 0; i < count; i++)
        {
            // Stay at most 100 messages ahead of the healthy subscriber (it keeps up); the slow one reads nothing at all.
            while (i - Volatile.Read(ref received) > 100 && !reader.IsCompleted) await Task.Delay(1);
            await publisher.SendAsync($"SEND\ndestination:/topic/flood\n\n{body}\0");
        }
        await publisher.SendAsync("SEND\ndestination:/topic/done\nreceipt:all-sent\n\n\0");
        Assert.Equal("all-sent", (await publisher.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
        await reader.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(count, received);
        // The slow session is gone from the registry (it was dropped as a slow consumer).
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (sessions.All.Any(s => s.Principal?.UserId == "slow") && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.DoesNotContain(sessions.All, s => s.Principal?.UserId == "slow");
        Assert.True((await MetricsText.ScrapeAsync(broker.BaseUri))["wsbroker_slow_consumer_disconnects_total"] >= 1);
    }

    [Fact]
    public async Task Shutdown_TellsClientsThenCloses()
    {
        var broker = await TestBroker.StartAsync();
        await using var client = await broker.ConnectAsync("stay");
        var stopping = broker.StopAsync();
        var frames = await client.ReceiveUntilClosedAsync();
        await stopping;
        await broker.DisposeAsync();
        Assert.Equal("server shutting down", Assert.Single(frames).Headers["message"]);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, client.Socket.CloseStatus);
    }

    [Fact]
    public async Task RawTopicUrl_DeliversJson_AndSendsTextMessagesToTheTopic()
    {
        await using var broker = await TestBroker.StartAsync();
        await using var stomp = await broker.ConnectAsync("stomp-user");
        await stomp.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/raw/room\nreceipt:r\n\n\0");
        await stomp.ReceiveAsync(StompCommand.Receipt);
        using var raw = new ClientWebSocket();
        await raw.ConnectAsync(new Uri($"{broker.WsUri}/topic/raw/room?access_token={broker.Token("raw-user")}"), CancellationToken.None);
        await raw.SendAsync("hello from raw"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var first = await ReceiveJsonAsync(raw);
        var second = await ReceiveJsonAsync(raw);
        var all = new[] { first, second };
        Assert.Contains(all, j => j.RootElement.TryGetProperty("receipt", out var r) && r.GetString() == "1");
        var delivery = all.Single(j => j.RootElement.TryGetProperty("body", out _)).RootElement;
        Assert.Equal("hello from raw", delivery.GetProperty("body").GetString());
        Assert.Equal("/topic/raw/room", delivery.GetProperty("destination").GetString());
        Assert.Equal("raw-user", delivery.GetProperty("sender").GetString());
        Assert.Equal("hello from raw", (await stomp.ReceiveAsync(StompCommand.Message)).BodyText);
        await stomp.SendAsync("SEND\ndestination:/topic/raw/room\n\nfrom stomp\0");
        Assert.Equal("from stomp", (await ReceiveJsonAsync(raw)).RootElement.GetProperty("body").GetString());
    }

    [Fact]
    public async Task RawTopicUrl_WithoutToken_Is401()
    {
        await using var broker = await TestBroker.StartAsync();
        using var raw = new ClientWebSocket();
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => raw.ConnectAsync(new Uri($"{broker.WsUri}/topic/x"), CancellationToken.None).WaitAsync(StompTestClient.Timeout));
        Assert.Contains("401", ex.Message);
    }

    [Fact]
    public async Task RawTopicUrl_ClientThatNeverAnswersPings_IsClosed()
    {
        await using var broker = await TestBroker.StartAsync("Broker:HeartBeatSendMs=1000", "Broker:HeartBeatReceiveMs=1000");
        // A hand-made WebSocket upgrade, then silence: no pong ever answers the broker's pings (a half-open client).
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(broker.BaseUri.Host, broker.BaseUri.Port);
        var stream = tcp.GetStream();
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET /ws/topic/silent?access_token={broker.Token("silent")} HTTP/1.1\r\n"
            + $"Host: {broker.BaseUri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        var buffer = new byte[4096];
        var started = System.Diagnostics.Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var received = new StringBuilder();
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cts.Token)) > 0) received.Append(Encoding.Latin1.GetString(buffer, 0, read));
        }
        catch (IOException) { }                                        // the broker aborts the socket: reset by peer
        Assert.StartsWith("HTTP/1.1 101", received.ToString(), StringComparison.Ordinal);
        Assert.InRange(started.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(14));   // closed by the broker, after the timeout
    }

    [Fact]
    public async Task ClientThatPingsAndNeverReads_IsDropped_AfterSlowConsumerMs()
    {
        // The server answers pings from inside its receive, on no clock of the session's: nothing of the session's is queued,
        // no heart-beats are due. A client that pings and never reads fills its side with pongs; the pong that can no longer
        // be written must not park the read loop for good.
        await using var broker = await TestBroker.StartAsync("Broker:SlowConsumerMs=1000");
        var sessions = broker.Services.GetRequiredService<SessionRegistry>();
        using var tcp = new System.Net.Sockets.TcpClient { ReceiveBufferSize = 4096 };
        await tcp.ConnectAsync(broker.BaseUri.Host, broker.BaseUri.Port);
        var stream = tcp.GetStream();
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET /ws HTTP/1.1\r\nHost: {broker.BaseUri.Authority}\r\nUpgrade: websocket\r\n"
            + $"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        await stream.WriteAsync(WebSocketPeer.Frame(WebSocketOpcode.Text,
            Encoding.UTF8.GetBytes($"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\nAuthorization:Bearer {broker.Token("pinger")}\n\n\0")));
        var buffer = new byte[4096];
        var received = new StringBuilder();
        using (var cts = new CancellationTokenSource(StompTestClient.Timeout))
        {
            while (!received.ToString().Contains("CONNECTED", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer, cts.Token);
                Assert.True(read > 0, $"closed before CONNECTED: {received}");
                received.Append(Encoding.Latin1.GetString(buffer, 0, read));
            }
        }
        var session = sessions.All.Single(s => s.Principal?.UserId == "pinger");
        // Then pings, in bounded batches, never reading: 64 MB at most, far more than the socket buffers on both sides hold.
        var ping = WebSocketPeer.Frame(WebSocketOpcode.Ping, new byte[125]);
        var batch = Enumerable.Repeat(ping, 1000).SelectMany(p => p).ToArray();
        var pinging = Task.Run(async () =>
        {
            try
            {
                for (var i = 0; i < 500 && sessions.All.Contains(session); i++) await stream.WriteAsync(batch);
            }
            catch (IOException) { }                                    // the broker dropped the connection
        });
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (sessions.All.Contains(session) && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.DoesNotContain(session, sessions.All);
        tcp.Close();
        await pinging.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task RawTopicUrl_MessageNeverFinished_ClosedAfterThePartialFrameTimeout_ThoughItAnswersPings()
    {
        // Pings every second; the partial-frame timeout at 1.5 s, so one is answered before it; silence would drop the
        // connection only after 10 s (a scan late past both must not drop it before its close goes out).
        await using var broker = await TestBroker.StartAsync("Broker:PartialFrameTimeoutMs=1500", "Broker:HeartBeatSendMs=200",
            "Broker:HeartBeatReceiveMs=5000");
        using var raw = new ClientWebSocket();
        await raw.ConnectAsync(new Uri($"{broker.WsUri}/topic/raw/unfinished?access_token={broker.Token("raw-user")}"), CancellationToken.None);
        await raw.SendAsync("the start of a message"u8.ToArray(), WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);
        // The client's receive answers the broker's pings (it is alive); the message it began is never finished.
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var result = await raw.ReceiveAsync(buffer, cts.Token);
            if (result.MessageType == WebSocketMessageType.Close) break;
        }
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, raw.CloseStatus);
    }

    private static async Task<System.Text.Json.JsonDocument> ReceiveJsonAsync(ClientWebSocket socket)
    {
        var buffer = new byte[64 * 1024];
        using var cts = new CancellationTokenSource(StompTestClient.Timeout);
        var result = await socket.ReceiveAsync(buffer, cts.Token);
        Assert.Equal(WebSocketMessageType.Text, result.MessageType);
        Assert.True(result.EndOfMessage);
        return System.Text.Json.JsonDocument.Parse(buffer.AsMemory(0, result.Count));
    }
}
