using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using MySqlConnector;
using WsBroker.Protocol;
using WsBroker.UserSync;
using WsBroker.UserSync.Contracts;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>The support chat end to end on a real broker; once on SQLite (embedded mode) and once on the real MariaDB.</summary>
public abstract class ChatTests : IAsyncLifetime
{
    private readonly bool _mysql;
    private string? _database;
    protected TestBroker Broker { get; private set; } = null!;

    protected ChatTests(bool mysql) => _mysql = mysql;

    public async Task InitializeAsync()
    {
        var settings = new List<string> { "Chat:DemoUsers=true", "Chat:DevTokens=true", "Chat:TypingPerSecond=5" };
        if (_mysql)
        {
            var server = Environment.GetEnvironmentVariable("WSBROKER_TEST_MYSQL") ?? "Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test";
            _database = $"wsbroker_c_{Guid.NewGuid():N}"[..24];
            await using (var admin = new MySqlConnection(server))
            {
                await admin.OpenAsync();
                await new MySqlCommand($"CREATE DATABASE `{_database}`", admin).ExecuteNonQueryAsync();
            }
            settings.Add("Storage:Provider=MySql");
            settings.Add("ConnectionStrings:MySql=" + new MySqlConnectionStringBuilder(server) { Database = _database }.ConnectionString);
        }
        Broker = await TestBroker.StartAsync([.. settings]);
        await PublishAsync(new UserCreated("admin2", "Second Admin", "admin", 1, DateTimeOffset.UtcNow));
        await WaitForUserAsync("admin2");
    }

    public async Task DisposeAsync()
    {
        await Broker.DisposeAsync();
        if (_database is not null)
        {
            var server = Environment.GetEnvironmentVariable("WSBROKER_TEST_MYSQL") ?? "Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test";
            await using var admin = new MySqlConnection(server);
            await admin.OpenAsync();
            await new MySqlCommand($"DROP DATABASE IF EXISTS `{_database}`", admin).ExecuteNonQueryAsync();
        }
    }

    private Task PublishAsync<T>(T message) where T : class => Broker.Services.GetRequiredService<IUserEventPublisher>().PublishAsync(message);

    private async Task WaitForUserAsync(string id, bool deleted = false)
    {
        var users = Broker.Services.GetRequiredService<Persistence.IUserStore>();
        for (var i = 0; i < 200; i++)
        {
            if (await users.FindAsync(id) is { } u && u.IsDeleted == deleted) return;
            await Task.Delay(25);
        }
        Assert.Fail($"user {id} not synced");
    }

    private async Task<StompTestClient> ChatterAsync(string user, params string[] destinations)
    {
        var role = user.StartsWith("admin", StringComparison.Ordinal) ? "admin" : "client";
        var client = await Broker.ConnectAsync(user, role);
        var wire = new StringBuilder();
        for (var i = 0; i < destinations.Length; i++) wire.Append($"SUBSCRIBE\nid:{i}\ndestination:{destinations[i]}\n\n\0");
        wire.Append("SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\nreceipt:ready\n\n\0");
        await client.SendAsync(wire.ToString());
        Assert.Equal("ready", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
        return client;
    }

    private HttpClient Http(string? user = null)
    {
        var http = new HttpClient { BaseAddress = Broker.BaseUri, Timeout = TimeSpan.FromSeconds(10) };
        if (user is not null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Broker.Token(user, user.StartsWith("admin", StringComparison.Ordinal) ? "admin" : "client"));
        return http;
    }

    [Fact]
    public async Task SupportConversation_OverStomp_MessagesTypingSeenAndHistory()
    {
        await using var admin = await ChatterAsync("admin1", "/topic/private-chat/admin1/*", "/topic/typing/admin1", "/topic/seen/admin1");
        await using var client = await ChatterAsync("client1", "/topic/private-chat/admin1/client1", "/topic/typing/client1", "/topic/seen/client1");

        await client.SendAsync("SEND\ndestination:/topic/typing/admin1\n\n{\"conversation\":\"admin1/client1\",\"typing\":true}\0");
        var typing = await admin.ReceiveAsync(StompCommand.Message);
        Assert.Equal("/topic/typing/admin1", typing.Headers["destination"]);
        using (var json = JsonDocument.Parse(typing.Body))
        {
            Assert.Equal("admin1/client1", json.RootElement.GetProperty("conversation").GetString());
            Assert.Equal("client1", json.RootElement.GetProperty("from").GetString());
            Assert.True(json.RootElement.GetProperty("typing").GetBoolean());
        }

        await client.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:q1\n\nMy meter shows 0 kWh — is that right?\0");
        var atAdmin = await admin.ReceiveAsync(StompCommand.Message);
        Assert.Equal("client1", atAdmin.Headers["sender"]);
        Assert.Equal("admin1", atAdmin.Headers["receiver"]);
        Assert.Equal("/topic/private-chat/admin1/client1", atAdmin.Headers["destination"]);
        Assert.True(long.Parse(atAdmin.Headers["timestamp"]!, System.Globalization.CultureInfo.InvariantCulture) > 1_700_000_000_000);
        Assert.Equal("My meter shows 0 kWh — is that right?", atAdmin.BodyText);
        var question = atAdmin.Headers["message-id"]!;
        // Its own copy comes after the commit and before the receipt, which names the stored id; then, once the admin's
        // session has it, the delivered notice.
        var beforeReceipt = await client.ReceiveUntilReceiptAsync("q1");
        Assert.Contains(beforeReceipt, f => f.Command == StompCommand.Message && f.Headers["message-id"] == question);
        var delivered = beforeReceipt.FirstOrDefault(f => f.Headers["status"] == "delivered")
            ?? await client.ReceiveAsync(f => f.Headers["status"] == "delivered");
        Assert.Equal("/topic/seen/client1", delivered.Headers["destination"]);
        Assert.Equal(question, delivered.Headers["message-id"]);
        Assert.Equal("admin1", delivered.Headers["reader"]);
        Assert.NotNull(delivered.Headers["delivered-at"]);

        await admin.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:a1\n\nLet me check your readings.\0");
        await admin.ReceiveUntilReceiptAsync("a1");                      // stored now
        var answer = await client.ReceiveAsync(f => f.Headers["destination"] == "/topic/private-chat/admin1/client1");
        Assert.Equal(("admin1", "client1"), (answer.Headers["sender"], answer.Headers["receiver"]));

        await admin.SendAsync($"SEND\ndestination:/topic/seen/client1\nmessage-id:{question}\nreceipt:s1\n\n\0");
        var seen = await client.ReceiveAsync(f => f.Headers["status"] == "seen");
        Assert.Equal("/topic/seen/client1", seen.Headers["destination"]);
        Assert.Equal(question, seen.Headers["message-id"]);
        Assert.Equal("admin1", seen.Headers["reader"]);
        Assert.NotNull(seen.Headers["seen-at"]);

        using var http = Http("client1");
        var page = await http.GetFromJsonAsync<JsonElement>("/api/conversations/admin1/client1/messages?limit=10");
        var messages = page.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["Let me check your readings.", "My meter shows 0 kWh — is that right?"], messages.Select(m => m.GetProperty("body").GetString()));
        Assert.True(messages[1].GetProperty("seen").GetBoolean());
        Assert.False(messages[0].GetProperty("seen").GetBoolean());
        Assert.Equal(question, messages[1].GetProperty("id").GetString());
        Assert.Equal(JsonValueKind.Number, messages[1].GetProperty("deliveredAt").ValueKind);         // the admin's session had it
    }

    [Fact]
    public async Task ClientMsgId_Resent_IsStoredAndDeliveredOnce_AndAnsweredWithTheOriginalId()
    {
        await using var admin = await ChatterAsync("admin1", "/topic/private-chat/admin1/*");
        await using var client = await ChatterAsync("client1");
        await client.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\nclient-msg-id:c-1\nreceipt:1\n\nonce\0");
        var first = await client.ReceiveAsync(StompCommand.Receipt);
        var id = first.Headers["message-id"];
        Assert.NotNull(id);
        // The same message again (the client never saw the receipt, say) and again while nothing else happens.
        await client.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\nclient-msg-id:c-1\nreceipt:2\n\nonce\0"
            + "SEND\ndestination:/topic/private-chat/admin1/client1\nclient-msg-id:c-1\nreceipt:3\n\nonce\0");
        Assert.Equal(id, (await client.ReceiveAsync(StompCommand.Receipt)).Headers["message-id"]);
        Assert.Equal(id, (await client.ReceiveAsync(StompCommand.Receipt)).Headers["message-id"]);
        var atAdmin = await admin.ReceiveAsync(StompCommand.Message);
        Assert.Equal(id, atAdmin.Headers["message-id"]);
        Assert.Equal("c-1", atAdmin.Headers["client-msg-id"]);
        await admin.AssertNoFrameAsync(TimeSpan.FromMilliseconds(300));
        using var http = Http("client1");
        var page = await http.GetFromJsonAsync<JsonElement>("/api/conversations/admin1/client1/messages?limit=10");
        var stored = page.GetProperty("messages").EnumerateArray().Single();
        Assert.Equal("c-1", stored.GetProperty("clientMsgId").GetString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("ünïcode")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123456789")]
    public async Task ClientMsgId_Malformed_IsRejected(string clientMsgId)
    {
        await using var client = await ChatterAsync("client1");
        await client.SendAsync($"SEND\ndestination:/topic/private-chat/admin1/client1\nclient-msg-id:{clientMsgId}\nreceipt:r\n\nx\0");
        var rejection = await client.ReceiveAsync(StompCommand.Message);
        Assert.Equal("could-not-send-message: invalid client-msg-id", rejection.Headers["message"]);
        Assert.Equal("r", rejection.Headers["receipt-id"]);
    }

    [Fact]
    public async Task SubscribeSince_ReplaysWhatWasMissed_ThenLive()
    {
        await using var client = await ChatterAsync("client1");
        var ids = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            await client.SendAsync($"SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:{i}\n\nm{i}\0");
            ids.Add((await client.ReceiveAsync(StompCommand.Receipt)).Headers["message-id"]!);
        }
        // The admin reconnects holding the first message: it gets the other three, in order, marked as replayed.
        await using var admin = await Broker.ConnectAsync("admin1", "admin");
        await admin.SendAsync($"SUBSCRIBE\nid:all\ndestination:/topic/private-chat/admin1/*\nsince:{ids[0]}\nreceipt:s\n\n\0");
        var replayed = await admin.ReceiveUntilReceiptAsync("s");
        Assert.Equal(ids[1..], replayed.Select(f => f.Headers["message-id"]));
        Assert.All(replayed, f => Assert.Equal("true", f.Headers["replay"]));
        Assert.Equal(["m1", "m2", "m3"], replayed.Select(f => f.BodyText));
        await client.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\n\nlive\0");
        var live = await admin.ReceiveAsync(StompCommand.Message);
        Assert.Equal("live", live.BodyText);
        Assert.Null(live.Headers["replay"]);
    }

    [Fact]
    public async Task SubscribeSince_MessagesCommittedDuringTheReplay_ArriveExactlyOnce()
    {
        await using var client = await ChatterAsync("client1");
        await using var admin = await Broker.ConnectAsync("admin1", "admin");
        // A stream of messages is being committed while the admin resumes from 0 several times: every resume must hold
        // every message exactly once, in id order.
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < 200; i++) await client.SendAsync($"SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:r{i}\n\nm{i}\0");
        });
        for (var round = 0; round < 3; round++)
        {
            await admin.SendAsync($"SUBSCRIBE\nid:s{round}\ndestination:/topic/private-chat/admin1/client1\nsince:0\nreceipt:sub{round}\n\n\0");
            await Task.Delay(20);
        }
        await sending;
        await client.ReceiveUntilReceiptAsync("r199");
        var bySubscription = new Dictionary<string, List<string>>();
        var receipts = 0;
        while (receipts < 3 || bySubscription.Count < 3 || bySubscription.Values.Any(l => l.Count < 200))
        {
            var frame = await admin.ReceiveAsync();
            if (frame.Command == StompCommand.Receipt) receipts++;
            if (frame.Command != StompCommand.Message) continue;
            var list = bySubscription.TryGetValue(frame.Headers["subscription"]!, out var l) ? l : bySubscription[frame.Headers["subscription"]!] = [];
            list.Add(frame.BodyText);
        }
        foreach (var list in bySubscription.Values) Assert.Equal(Enumerable.Range(0, 200).Select(i => $"m{i}"), list);
        await admin.AssertNoFrameAsync(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task CustomerBurstOf1500_LeavesTheAdministratorConnected_AndEveryMessageArrivesInOrder()
    {
        // One WebSocket message carrying 1,500 chat SENDs (the rate limit raised: this is about the admin's queue).
        await using var burst = await TestBroker.StartAsync("Chat:MessagesPerSecond=100000", "Chat:MessageBurst=100000",
            $"Auth:SigningKey={TestBroker.SigningKey}");
        await using var admin = await burst.ConnectAsync("admin1", "admin");
        await admin.SendAsync("SUBSCRIBE\nid:all\ndestination:/topic/private-chat/admin1/*\nreceipt:s\n\n\0");
        await admin.ReceiveUntilReceiptAsync("s");
        await using var client = await burst.ConnectAsync("client1");
        var wire = new StringBuilder();
        for (var i = 0; i < 1500; i++) wire.Append($"SEND\ndestination:/topic/private-chat/admin1/client1\n\nb{i}\0");
        wire.Append("SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:last\n\nlast\0");
        await client.SendAsync(wire.ToString());
        for (var i = 0; i < 1500; i++) Assert.Equal($"b{i}", (await admin.ReceiveAsync(StompCommand.Message)).BodyText);
        Assert.Equal("last", (await admin.ReceiveAsync(StompCommand.Message)).BodyText);
        await client.ReceiveUntilReceiptAsync("last");
        await admin.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:alive\n\nstill here\0");
        await admin.ReceiveUntilReceiptAsync("alive");                  // the admin's session was never cut
    }

    [Fact]
    public async Task ChatMessages_OverTheRateLimit_AreRefused_ConnectionKept()
    {
        await using var limited = await TestBroker.StartAsync("Chat:MessagesPerSecond=1", "Chat:MessageBurst=3",
            $"Auth:SigningKey={TestBroker.SigningKey}");
        await using var client = await limited.ConnectAsync("client1");
        await client.SendAsync("SUBSCRIBE\nid:e\ndestination:/user/queue/errors\nreceipt:e\n\n\0");
        await client.ReceiveUntilReceiptAsync("e");
        var wire = new StringBuilder();
        for (var i = 0; i < 5; i++) wire.Append($"SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:{i}\n\nm{i}\0");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await client.SendAsync(wire.ToString());
        var answers = new List<StompFrame>();
        for (var i = 0; i < 5; i++) answers.Add(await client.ReceiveAsync());
        // The burst of three, and one more for each whole second the five took to be judged (none on a machine not stalled).
        var receipts = answers.Count(f => f.Command == StompCommand.Receipt);
        Assert.InRange(receipts, 3, 3 + (int)clock.Elapsed.TotalSeconds);
        Assert.Equal(5 - receipts, answers.Count(f => f.Headers["message"] == "could-not-send-message: rate limit"));
    }

    [Fact]
    public async Task OneAdmin_ThreeCustomers_NoCustomerSeesAnotherCustomersTraffic()
    {
        await using var admin = await ChatterAsync("admin1", "/topic/private-chat/admin1/*", "/topic/typing/admin1", "/topic/seen/admin1");
        var clients = new List<StompTestClient>();
        foreach (var c in new[] { "client1", "client2", "client3" })
            clients.Add(await ChatterAsync(c, $"/topic/private-chat/admin1/{c}", $"/topic/typing/{c}", $"/topic/seen/{c}"));
        try
        {
            for (var i = 0; i < 3; i++)
                await clients[i].SendAsync($"SEND\ndestination:/topic/private-chat/admin1/client{i + 1}\n\nhello from client{i + 1}\0");
            var atAdmin = new List<StompFrame>();
            for (var i = 0; i < 3; i++) atAdmin.Add(await admin.ReceiveAsync(StompCommand.Message));
            Assert.Equal(["client1", "client2", "client3"], atAdmin.Select(m => m.Headers["sender"]).Order());
            // Each customer: its own copy and, the admin's session having it, the delivered notice (in either order).
            for (var i = 0; i < 3; i++)
            {
                var c = $"client{i + 1}";
                var two = new[] { await clients[i].ReceiveAsync(), await clients[i].ReceiveAsync() };
                Assert.Contains(two, f => f.BodyText == $"hello from {c}");
                Assert.Contains(two, f => f.Headers["status"] == "delivered" && f.Headers["destination"] == $"/topic/seen/{c}");
            }
            // Each customer gets its own echo only, then the admin's answer, typing notice and seen notice for it alone.
            for (var i = 0; i < 3; i++)
            {
                var c = $"client{i + 1}";
                await admin.SendAsync($"SEND\ndestination:/topic/typing/{c}\n\n{{\"typing\":true}}\0");
                await admin.SendAsync($"SEND\ndestination:/topic/private-chat/admin1/{c}\n\nanswer for {c}\0");
                var theirs = atAdmin.Single(m => m.Headers["sender"] == c).Headers["message-id"];
                await admin.SendAsync($"SEND\ndestination:/topic/seen/{c}\nmessage-id:{theirs}\n\n\0");
            }
            for (var i = 0; i < 3; i++)
            {
                var c = $"client{i + 1}";
                var got = new[] { await clients[i].ReceiveAsync(), await clients[i].ReceiveAsync(), await clients[i].ReceiveAsync() };
                Assert.Contains(got, f => f.Headers["destination"] == $"/topic/typing/{c}");
                Assert.Contains(got, f => f.BodyText == $"answer for {c}");
                Assert.Contains(got, f => f.Headers["destination"] == $"/topic/seen/{c}");
                Assert.All(got, f => Assert.DoesNotContain(f.Headers["destination"]!, new[] { "client1", "client2", "client3" }.Where(o => o != c)));
                await clients[i].AssertNoFrameAsync(TimeSpan.FromMilliseconds(200));
            }
        }
        finally
        {
            foreach (var c in clients) await c.DisposeAsync();
        }
    }

    public static TheoryData<string, string, string> ForbiddenSubscriptions => new()
    {
        { "client2", "/topic/private-chat/admin1/client1", "access denied: not a party of this conversation" },
        { "client1", "/topic/seen/admin1", "access denied: only the user may subscribe to its own notices" },
        { "client1", "/topic/typing/client2", "access denied: only the user may subscribe to its own notices" },
        { "client1", "/topic/private-chat/admin1/*", "access denied: only that admin may subscribe to all of its conversations" },
        { "admin2", "/topic/private-chat/admin1/*", "access denied: only that admin may subscribe to all of its conversations" },
        { "admin1", "/topic/#", "access denied: wildcards may not span chat destinations" },
    };

    [Theory]
    [MemberData(nameof(ForbiddenSubscriptions))]
    public async Task Subscribe_NotAllowed_ErrorThenClose(string user, string destination, string message)
    {
        await using var client = await Broker.ConnectAsync(user, user.StartsWith("admin", StringComparison.Ordinal) ? "admin" : "client");
        await client.SendAsync($"SUBSCRIBE\nid:1\ndestination:{destination}\nreceipt:sub\n\n\0");
        var error = Assert.Single(await client.ReceiveUntilClosedAsync());
        Assert.Equal(StompCommand.Error, error.Command);
        Assert.Equal(message, error.Headers["message"]);
        Assert.Equal("sub", error.Headers["receipt-id"]);
    }

    public static TheoryData<string, string, string> RejectedSends => new()
    {
        { "client2", "/topic/private-chat/admin1/client1", "could-not-send-message: sender not a party of the conversation" },
        { "admin1", "/topic/private-chat/admin1/ghost", "could-not-send-message: receiver unknown" },
        { "admin1", "/topic/private-chat/admin1/admin2", "could-not-send-message: admin2 is not a customer" },
        { "client1", "/topic/private-chat/client2/client1", "could-not-send-message: client2 is not an administrator" },
        { "client1", "/topic/typing/client2", "could-not-send-message: typing only between a customer and an administrator" },
        { "client1", "/topic/presence", "could-not-send-message: presence is published by the broker only" },
        { "client1", "/topic/seen/admin1", "could-not-send-message: a read receipt needs a message-id or up-to header" },
    };

    [Theory]
    [MemberData(nameof(RejectedSends))]
    public async Task Send_Rejected_OnUserQueueErrors_ConnectionKept(string user, string destination, string message)
    {
        await using var client = await ChatterAsync(user);
        await client.SendAsync($"SEND\ndestination:{destination}\nreceipt:r1\n\ntext\0");
        var rejection = await client.ReceiveAsync(StompCommand.Message);
        Assert.Equal("/user/queue/errors", rejection.Headers["destination"]);
        Assert.Equal(message, rejection.Headers["message"]);
        Assert.Equal("r1", rejection.Headers["receipt-id"]);
        await client.SendAsync("SEND\ndestination:/topic/still-here\nreceipt:alive\n\n\0");
        Assert.Equal("alive", (await client.ReceiveAsync(StompCommand.Receipt)).Headers["receipt-id"]);
    }

    [Fact]
    public async Task Seen_ByTheSenderItselfOrTwice_IsRejectedOrIgnored()
    {
        await using var admin = await ChatterAsync("admin1", "/topic/private-chat/admin1/*", "/topic/seen/admin1");
        await using var client = await ChatterAsync("client1", "/topic/seen/client1");
        await client.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:m\n\nhi\0");
        await client.ReceiveUntilReceiptAsync("m");
        var id = (await admin.ReceiveAsync(StompCommand.Message)).Headers["message-id"];
        await client.ReceiveAsync(f => f.Headers["status"] == "delivered");
        await client.SendAsync($"SEND\ndestination:/topic/seen/admin1\nmessage-id:{id}\nreceipt:own\n\n\0");
        Assert.Equal("could-not-send-message: only the receiver may mark a message seen", (await client.ReceiveAsync(StompCommand.Message)).Headers["message"]);
        await admin.SendAsync($"SEND\ndestination:/topic/seen/client1\nmessage-id:{id}\nreceipt:s1\n\n\0");
        await admin.ReceiveAsync(StompCommand.Receipt);
        Assert.Equal("admin1", (await client.ReceiveAsync(f => f.Headers["status"] == "seen")).Headers["reader"]);
        await admin.SendAsync($"SEND\ndestination:/topic/seen/client1\nmessage-id:{id}\nreceipt:s2\n\n\0");
        await admin.ReceiveAsync(StompCommand.Receipt);                 // stored once: the repeat is receipted, nobody is told again
        await client.AssertNoFrameAsync(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Typing_OverTheRateLimit_IsRejected_AndNeverStored()
    {
        await using var client = await ChatterAsync("client2");
        var wire = new StringBuilder();
        for (var i = 0; i < 12; i++) wire.Append("SEND\ndestination:/topic/typing/admin1\n\n{\"typing\":true}\0");
        await client.SendAsync(wire.ToString());
        var rejection = await client.ReceiveAsync(StompCommand.Message);
        Assert.Equal("could-not-send-message: rate limit", rejection.Headers["message"]);
        using var http = Http("client2");
        var page = await http.GetFromJsonAsync<JsonElement>("/api/conversations/admin1/client2/messages");
        Assert.Empty(page.GetProperty("messages").EnumerateArray());
    }

    [Fact]
    public async Task Transaction_StoredSends_AnsweredAfterTheirCommit_BeforeTheCommitReceipt_RejectionsWithReceiptId()
    {
        await using var client = await ChatterAsync("client1");
        await client.SendAsync("BEGIN\ntransaction:t1\n\n\0"
            + "SEND\ndestination:/topic/private-chat/admin1/client1\ntransaction:t1\nreceipt:m1\n\nsent in a transaction\0"
            + "SEND\ndestination:/topic/private-chat/admin2/client1\ntransaction:t1\nreceipt:m2\n\nhello\0"
            + "SEND\ndestination:/topic/private-chat/client2/client1\ntransaction:t1\nreceipt:bad\n\nnot an admin\0");
        // Stored destinations: no receipt while the transaction is open (nothing is stored yet). A plain SEND's receipt
        // marks the point by which a receipt sent on buffering would have arrived.
        await Task.Delay(200);
        await client.SendAsync("SEND\ndestination:/topic/probe\nreceipt:probe\n\n\0");
        Assert.Empty(await client.ReceiveUntilReceiptAsync("probe"));
        await client.SendAsync("COMMIT\ntransaction:t1\nreceipt:c1\n\n\0");
        var before = await client.ReceiveUntilReceiptAsync("c1");
        Assert.Contains(before, f => f.Command == StompCommand.Receipt && f.Headers["receipt-id"] == "m1");
        Assert.Contains(before, f => f.Command == StompCommand.Receipt && f.Headers["receipt-id"] == "m2");
        Assert.Contains(before, f => f.Headers["destination"] == "/user/queue/errors" && f.Headers["receipt-id"] == "bad");
        using var http = Http("client1");
        var page = await http.GetFromJsonAsync<JsonElement>("/api/conversations/admin1/client1/messages");
        Assert.Contains(page.GetProperty("messages").EnumerateArray(), m => m.GetProperty("body").GetString() == "sent in a transaction");
    }

    [Theory]
    [InlineData("ABORT\ntransaction:t3\nreceipt:end\n\n\0")]                   // the transaction is aborted
    [InlineData("DISCONNECT\nreceipt:end\n\n\0")]                                // or left open when the client goes
    public async Task Transaction_NeverCommitted_StoredSendsAreToldTheyWereDropped(string ending)
    {
        await using var client = await ChatterAsync("client1");
        await client.SendAsync("BEGIN\ntransaction:t3\n\n\0"
            + "SEND\ndestination:/topic/private-chat/admin1/client1\ntransaction:t3\nreceipt:gone\n\nnever mind\0" + ending);
        var dropped = Assert.Single(await client.ReceiveUntilReceiptAsync("end"));
        Assert.Equal(("gone", "could-not-send-message: transaction aborted"), (dropped.Headers["receipt-id"], dropped.Headers["message"]));
        using var http = Http("client1");
        var page = await http.GetFromJsonAsync<JsonElement>("/api/conversations/admin1/client1/messages");
        Assert.DoesNotContain(page.GetProperty("messages").EnumerateArray(), m => m.GetProperty("body").GetString() == "never mind");
    }

    [Fact]
    public async Task Disconnect_WithReceipt_ComesAfterTheReceiptsOfStoredMessages()
    {
        await using var client = await ChatterAsync("client2");
        var wire = new StringBuilder();
        for (var i = 0; i < 20; i++) wire.Append($"SEND\ndestination:/topic/private-chat/admin1/client2\nreceipt:m{i}\n\nbye {i}\0");
        wire.Append("DISCONNECT\nreceipt:bye\n\n\0");
        await client.SendAsync(wire.ToString());
        var frames = await client.ReceiveUntilClosedAsync();
        var receipts = frames.Where(f => f.Command == StompCommand.Receipt).Select(f => f.Headers["receipt-id"]).ToList();
        Assert.Equal("bye", receipts[^1]);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"m{i}").Order(), receipts.SkipLast(1).Order());
    }

    [Fact]
    public async Task Seen_NamingTheWrongSender_IsRejected_AndTheRealSenderStillGetsTheNotice()
    {
        await using var admin = await ChatterAsync("admin1", "/topic/private-chat/admin1/*");
        await using var client = await ChatterAsync("client1", "/topic/seen/client1");
        await client.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\nreceipt:q\n\nhello?\0");
        await client.ReceiveUntilReceiptAsync("q");
        var id = (await admin.ReceiveAsync(StompCommand.Message)).Headers["message-id"];

        await admin.SendAsync($"SEND\ndestination:/topic/seen/client2\nmessage-id:{id}\nreceipt:wrong\n\n\0");
        var rejection = await admin.ReceiveAsync(StompCommand.Message);
        Assert.Equal(("/user/queue/errors", "wrong"), (rejection.Headers["destination"], rejection.Headers["receipt-id"]));

        await admin.SendAsync($"SEND\ndestination:/topic/seen/client1\nmessage-id:{id}\nreceipt:right\n\n\0");
        await admin.ReceiveUntilReceiptAsync("right");
        var notice = await client.ReceiveAsync(StompCommand.Message);
        Assert.Equal(("/topic/seen/client1", id), (notice.Headers["destination"], notice.Headers["message-id"]));
    }

    [Fact]
    public async Task DeletedUser_CannotConnectAgain_NorReadHistory()
    {
        await PublishAsync(new UserDeleted("client3", "", "client", 2, DateTimeOffset.UtcNow));
        await WaitForUserAsync("client3", deleted: true);
        await using var stomp = await StompTestClient.OpenAsync(Broker.WsUri);
        await stomp.SendAsync($"CONNECT\naccept-version:1.2\nheart-beat:0,0\nreceipt:c\nAuthorization:Bearer {Broker.Token("client3")}\n\n\0");
        var error = Assert.Single(await stomp.ReceiveUntilClosedAsync());
        Assert.Equal((StompCommand.Error, "user deleted", "c"), (error.Command, error.Headers["message"], error.Headers["receipt-id"]));

        using var raw = new System.Net.WebSockets.ClientWebSocket();
        var refused = await Assert.ThrowsAnyAsync<System.Net.WebSockets.WebSocketException>(() => raw.ConnectAsync(
            new Uri($"{Broker.WsUri}/topic/news?access_token={Broker.Token("client3")}"), CancellationToken.None));
        Assert.Contains("403", refused.Message, StringComparison.Ordinal);

        using var http = Http("client3");
        using var history = await http.GetAsync("/api/conversations/admin1/client3/messages");
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, history.StatusCode);
    }

    [Fact]
    public async Task DeletedUser_SessionsClosed_AndMessagesToItRejected()
    {
        await using var admin = await ChatterAsync("admin1");
        await using var victim = await ChatterAsync("client3");
        await PublishAsync(new UserDeleted("client3", "", "client", 2, DateTimeOffset.UtcNow));
        var frames = await victim.ReceiveUntilClosedAsync();
        Assert.Equal("user deleted", frames[^1].Headers["message"]);
        await admin.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client3\nreceipt:x\n\nstill there?\0");
        Assert.Equal("could-not-send-message: receiver deleted", (await admin.ReceiveAsync(StompCommand.Message)).Headers["message"]);
    }

    [Fact]
    public async Task MessageToOfflineAdmin_IsInHistory_AndCountedUnread()
    {
        await using (var client = await ChatterAsync("client3"))
        {
            await client.SendAsync("SEND\ndestination:/topic/private-chat/admin2/client3\nreceipt:off\n\nanyone there?\0");
            await client.ReceiveAsync(StompCommand.Receipt);
        }
        using var http = Http("admin2");
        // The session's end is processed after the socket closes: wait (bounded) until client3 shows offline.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var contacts = (await http.GetFromJsonAsync<JsonElement>("/api/contacts")).GetProperty("contacts").EnumerateArray().ToList();
            var client3 = contacts.Single(c => c.GetProperty("userId").GetString() == "client3");
            if (client3.GetProperty("online").GetBoolean() && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
                continue;
            }
            Assert.Equal(1, client3.GetProperty("unread").GetInt32());
            Assert.Equal("anyone there?", client3.GetProperty("lastMessage").GetProperty("body").GetString());
            Assert.Equal("client3", contacts[0].GetProperty("userId").GetString());      // the conversation with news first
            Assert.False(client3.GetProperty("online").GetBoolean());
            break;
        }
        var history = await http.GetFromJsonAsync<JsonElement>("/api/conversations/admin2/client3/messages");
        Assert.Equal("anyone there?", history.GetProperty("messages")[0].GetProperty("body").GetString());
    }

    [Fact]
    public async Task Presence_IsAnnouncedWhenAUserComesAndGoes()
    {
        await using var watcher = await ChatterAsync("admin1", "/topic/presence");
        var client = await ChatterAsync("client2");
        var online = await watcher.ReceiveAsync(StompCommand.Message);
        Assert.Equal("{\"userId\":\"client2\",\"online\":true}", online.BodyText);
        await client.DisposeAsync();
        Assert.Equal("{\"userId\":\"client2\",\"online\":false}", (await watcher.ReceiveAsync(StompCommand.Message)).BodyText);
    }

    [Fact]
    public async Task RawTopicUrl_Conversation_JsonBothWays_WithReceiptAfterCommit()
    {
        await using var admin = await ChatterAsync("admin1", "/topic/private-chat/admin1/*");
        using var raw = new ClientWebSocket();
        await raw.ConnectAsync(new Uri($"{Broker.WsUri}/topic/private-chat/admin1/client1?access_token={Broker.Token("client1")}"), CancellationToken.None);
        await raw.SendAsync("raw hello"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var atAdmin = await admin.ReceiveAsync(StompCommand.Message);
        Assert.Equal(("client1", "raw hello"), (atAdmin.Headers["sender"], atAdmin.BodyText));
        var got = new List<JsonElement> { await ReceiveJsonAsync(raw), await ReceiveJsonAsync(raw) };
        Assert.Contains(got, j => j.TryGetProperty("receipt", out var r) && r.GetString() == "1");
        var echo = got.Single(j => j.TryGetProperty("body", out _));
        Assert.Equal(("client1", "admin1"), (echo.GetProperty("sender").GetString(), echo.GetProperty("receiver").GetString()));
        await admin.SendAsync("SEND\ndestination:/topic/private-chat/admin1/client1\n\nraw answer\0");
        var answer = await ReceiveJsonAsync(raw);
        Assert.Equal("raw answer", answer.GetProperty("body").GetString());
        Assert.Equal(atAdmin.Headers["message-id"]!.Length > 0, answer.GetProperty("id").GetString()!.Length > 0);
        using var forbidden = new ClientWebSocket();
        await forbidden.ConnectAsync(new Uri($"{Broker.WsUri}/topic/private-chat/admin1/client1?access_token={Broker.Token("client2")}"), CancellationToken.None);
        Assert.Equal("access denied: not a party of this conversation", (await ReceiveJsonAsync(forbidden)).GetProperty("error").GetString());
    }

    [Fact]
    public async Task Rest_StatusCodesAndProblemBodies()
    {
        using var anonymous = Http();
        var me = await anonymous.GetAsync("/api/me");
        Assert.Equal(HttpStatusCode.Unauthorized, me.StatusCode);
        Assert.Equal("application/problem+json", me.Content.Headers.ContentType?.MediaType);
        using var client = Http("client1");
        var meJson = await client.GetFromJsonAsync<JsonElement>("/api/me");
        Assert.Equal(("client1", "client", "Carla Client"), (meJson.GetProperty("userId").GetString(), meJson.GetProperty("role").GetString(), meJson.GetProperty("name").GetString()));
        var contacts = (await client.GetFromJsonAsync<JsonElement>("/api/contacts")).GetProperty("contacts").EnumerateArray().Select(c => c.GetProperty("userId").GetString());
        Assert.Equal(["admin1", "admin2"], contacts.Order());
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/conversations/admin1/client2/messages")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/api/conversations/admin1/client1/messages?limit=0")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/api/conversations/admin1/client1/messages?before=abc")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/conversations/ghost/client1/messages")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/nothing-here")).StatusCode);

        var token = await anonymous.PostAsJsonAsync("/api/dev/token", new { userId = "admin1" });
        var tokenJson = await token.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(("admin1", "admin"), (tokenJson.GetProperty("userId").GetString(), tokenJson.GetProperty("role").GetString()));
        using var withDevToken = Http();
        withDevToken.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokenJson.GetProperty("token").GetString());
        Assert.Equal(HttpStatusCode.OK, (await withDevToken.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await anonymous.PostAsJsonAsync("/api/dev/token", new { userId = "nobody" })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await anonymous.PostAsync("/api/dev/token", new StringContent("{oops", Encoding.UTF8, "application/json"))).StatusCode);
    }

    private static async Task<JsonElement> ReceiveJsonAsync(ClientWebSocket socket)
    {
        var buffer = new byte[64 * 1024];
        using var cts = new CancellationTokenSource(StompTestClient.Timeout);
        var result = await socket.ReceiveAsync(buffer, cts.Token);
        using var doc = JsonDocument.Parse(buffer.AsMemory(0, result.Count));
        return doc.RootElement.Clone();
    }
}

public sealed class SqliteChatTests() : ChatTests(mysql: false);

[Trait("Category", "Integration")]
public sealed class MySqlChatTests() : ChatTests(mysql: true);
