using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker.Chat;
using WsBroker.Persistence;
using WsBroker.Protocol;
using WsBroker.UserSync;
using WsBroker.UserSync.Contracts;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>The live inbox on a real broker (SQLite, in-memory bus): snapshot, every kind of delta in order, resume with
/// since, and the hand-off from the store read to the live events while messages keep committing.</summary>
public sealed class InboxFeedTests : IAsyncLifetime
{
    private TestBroker _broker = null!;

    // The inbox is read slowly (a pause before and after the store is read), so that messages commit while it is.
    public async Task InitializeAsync() => _broker = await TestBroker.StartAsync(
        services => services.AddSingleton<InboxLoader, SlowLoader>(),
        "Chat:DemoUsers=true", "Chat:MessagesPerSecond=100000", "Chat:MessageBurst=100000");

    private sealed class SlowLoader(IMessageStore messages, IUserStore users) : InboxLoader(messages, users)
    {
        public override async Task<InboxLoad> LoadAsync(string userId, CancellationToken cancellationToken)
        {
            await Task.Delay(20, cancellationToken);
            var load = await base.LoadAsync(userId, cancellationToken);
            await Task.Delay(20, cancellationToken);
            return load;
        }
    }

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    private Task PublishAsync<T>(T message) where T : class => _broker.Services.GetRequiredService<IUserEventPublisher>().PublishAsync(message);

    private async Task<StompTestClient> InboxAsync(string user, string role, string? since = null)
    {
        var client = await _broker.ConnectAsync(user, role);
        await client.SendAsync($"SUBSCRIBE\nid:inbox\ndestination:/user/queue/inbox\n{(since is null ? "" : $"since:{since}\n")}receipt:inbox\n\n\0");
        return client;
    }

    private static async Task SayAsync(StompTestClient client, string admin, string customer, string body, string receipt = "said")
    {
        await client.SendAsync($"SEND\ndestination:/topic/private-chat/{admin}/{customer}\nreceipt:{receipt}\n\n{body}\0");
        await client.ReceiveAsync(f => f.Command == StompCommand.Receipt && f.Headers["receipt-id"] == receipt);
    }

    private static async Task<Delta> NextAsync(StompTestClient client)
    {
        var frame = await client.ReceiveAsync(f => f.Command == StompCommand.Message && f.Headers["destination"] == "/user/queue/inbox");
        return Delta.Of(frame);
    }

    [Fact]
    public async Task Inbox_SnapshotThenEachKindOfChange_InOrderWithGrowingIds()
    {
        await using var carla = await _broker.ConnectAsync("client1");
        await SayAsync(carla, "admin1", "client1", "My meter shows zero");
        await using var admin = await InboxAsync("admin1", "admin");
        var frames = await admin.ReceiveUntilReceiptAsync("inbox");
        var snapshot = Delta.Of(Assert.Single(frames));
        Assert.Equal("snapshot", snapshot.Kind);
        var first = Assert.Single(snapshot.Conversations);
        Assert.Equal(("client1", "Carla Client", 1, true, "My meter shows zero"), (first.Peer, first.Name, first.Unread, first.Online, first.Preview));

        var chris = await _broker.ConnectAsync("client2");               // no peer yet: no presence delta
        await SayAsync(chris, "admin1", "client2", "Hi, I moved");
        var fresh = await NextAsync(admin);
        Assert.Equal(("conversation", "client2", 1, true), (fresh.Kind, fresh.Peer, fresh.Conversation.Unread, fresh.Conversation.Online));
        Assert.Equal(fresh.LastMessageId, fresh.Conversation.LastMessageId);
        await SayAsync(carla, "admin1", "client1", "Still zero");
        var second = await NextAsync(admin);
        Assert.Equal(("conversation", "client1", 2, "Still zero"), (second.Kind, second.Peer, second.Conversation.Unread, second.Conversation.Preview));
        await admin.SendAsync($"SEND\ndestination:/topic/seen/client1\nup-to:{second.LastMessageId}\n\n\0");
        var read = await NextAsync(admin);
        Assert.Equal(("unread", "client1", 0), (read.Kind, read.Peer, read.Conversation.Unread));
        await chris.DisposeAsync();
        var gone = await NextAsync(admin);
        Assert.Equal(("presence", "client2", false), (gone.Kind, gone.Peer, gone.Conversation.Online));
        long[] ids = [snapshot.Id, fresh.Id, second.Id, read.Id, gone.Id];
        Assert.Equal(ids.Order(), ids);
        Assert.Equal(ids.Length, ids.Distinct().Count());
    }

    [Fact]
    public async Task Inbox_ResumeWithSince_GetsExactlyWhatChanged_BadSinceAndSendAreRefused()
    {
        await using var carla = await _broker.ConnectAsync("client1");
        await SayAsync(carla, "admin1", "client1", "first");
        var admin = await InboxAsync("admin1", "admin");
        var snapshot = Delta.Of(Assert.Single(await admin.ReceiveUntilReceiptAsync("inbox")));
        await admin.DisposeAsync();
        await SayAsync(carla, "admin1", "client1", "while away");
        await using var back = await InboxAsync("admin1", "admin", snapshot.Id.ToString(CultureInfo.InvariantCulture));
        var missed = (await back.ReceiveUntilReceiptAsync("inbox")).Select(Delta.Of).ToList();
        var only = Assert.Single(missed);
        Assert.Equal(("conversation", "while away", 2), (only.Kind, only.Conversation.Preview, only.Conversation.Unread));

        await using var bad = await _broker.ConnectAsync("admin1", "admin");
        await bad.SendAsync("SUBSCRIBE\nid:x\ndestination:/user/queue/inbox\nsince:-5\nreceipt:r\n\n\0");
        var error = await bad.ReceiveAsync(StompCommand.Error);
        Assert.StartsWith("invalid since header", error.Headers["message"]);
        await back.SendAsync("SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\n\n\0SEND\ndestination:/user/queue/inbox\nreceipt:s\n\nhello\0");
        var rejected = await back.ReceiveAsync(f => f.Headers["destination"] == "/user/queue/errors");
        Assert.Equal("could-not-send-message: /user destinations are written by the broker only", rejected.Headers["message"]);
    }

    [Fact]
    public async Task Inbox_AfterABackplaneGap_IsReadAgain_SoSinceGetsASnapshot()
    {
        await using var carla = await _broker.ConnectAsync("client1");
        await SayAsync(carla, "admin1", "client1", "before the gap");
        var admin = await InboxAsync("admin1", "admin");
        var snapshot = Delta.Of(Assert.Single(await admin.ReceiveUntilReceiptAsync("inbox")));
        await admin.DisposeAsync();

        // The cluster's backplane came back: what this node kept may lack other nodes' messages (BackplaneGap).
        _broker.Services.GetRequiredService<InboxFeed>().BackplaneResumed();
        await using var back = await InboxAsync("admin1", "admin", snapshot.Id.ToString(CultureInfo.InvariantCulture));
        var again = Delta.Of(Assert.Single(await back.ReceiveUntilReceiptAsync("inbox")));
        Assert.Equal("snapshot", again.Kind);
        Assert.Equal("before the gap", Assert.Single(again.Conversations).Preview);
    }

    [Fact]
    public async Task Inbox_UserEvents_RenameAndDelete_AreUserDeltas()
    {
        await using var carla = await _broker.ConnectAsync("client3");
        await SayAsync(carla, "admin1", "client3", "hello");
        await using var admin = await InboxAsync("admin1", "admin");
        await admin.ReceiveUntilReceiptAsync("inbox");
        await PublishAsync(new UserUpdated("client3", "Cleo Renamed", "client", 2, DateTimeOffset.UtcNow));
        var renamed = await NextAsync(admin);
        Assert.Equal(("user", "Cleo Renamed", false), (renamed.Kind, renamed.Conversation.Name, renamed.Conversation.Deleted));
        await PublishAsync(new UserDeleted("client3", "Cleo Renamed", "client", 3, DateTimeOffset.UtcNow));
        var deleted = await NextAsync(admin);
        Assert.Equal(("user", true), (deleted.Kind, deleted.Conversation.Deleted));
        Assert.True(deleted.Id > renamed.Id);
    }

    // Messages commit without pause while each of ten administrators subscribes to its inbox at a different moment: every
    // inbox, snapshot plus deltas, ends with every message counted once (the unread count) and the last one last.
    [Fact]
    public async Task Inbox_SubscribingWhileMessagesCommit_CountsEachMessageOnce()
    {
        const int admins = 10, perAdmin = 40;
        var users = _broker.Services.GetRequiredService<IUserStore>();
        for (var a = 0; a < admins; a++) await PublishAsync(new UserCreated($"hand-{a}", $"Admin {a}", "admin", 1, DateTimeOffset.UtcNow));
        for (var a = 0; a < admins; a++)
        {
            while (await users.FindAsync($"hand-{a}") is null) await Task.Delay(10);
        }
        await using var customer = await _broker.ConnectAsync("client1");
        var inboxes = new List<(StompTestClient Client, Dictionary<string, Delta.Entry> View)>();
        try
        {
            // One round (a message to each administrator) every 2 ms, while the administrators subscribe one after another.
            var sending = Task.Run(async () =>
            {
                for (var i = 0; i < perAdmin; i++)
                {
                    var round = new StringBuilder();
                    for (var a = 0; a < admins; a++) round.Append($"SEND\ndestination:/topic/private-chat/hand-{a}/client1\n\nm{i}\0");
                    await customer.SendAsync(round.ToString());
                    await Task.Delay(2);
                }
                await SayAsync(customer, "hand-0", "client1", "last", "done");
            });
            for (var a = 0; a < admins; a++)
            {
                inboxes.Add((await InboxAsync($"hand-{a}", "admin"), []));
                await Task.Delay(5);
            }
            await sending;
            var messages = _broker.Services.GetRequiredService<IMessageStore>();
            for (var a = 0; a < admins; a++)
            {
                var expected = (await messages.GetConversationsAsync($"hand-{a}")).Single();
                var (client, view) = inboxes[a];
                void Apply(Delta delta)
                {
                    if (delta.Kind == "snapshot") foreach (var c in delta.Conversations) view[c.Peer] = c;
                    else view[delta.Peer!] = delta.Conversation;
                }
                // The snapshot (and any delta before the RECEIPT), then deltas until the last message is shown.
                foreach (var frame in await client.ReceiveUntilReceiptAsync("inbox")) Apply(Delta.Of(frame));
                while (!view.TryGetValue("client1", out var entry) || entry.LastMessageId != expected.LastMessage!.Id) Apply(await NextAsync(client));
                Assert.Equal(expected.UnreadCount, view["client1"].Unread);
                Assert.Equal(a == 0 ? perAdmin + 1 : perAdmin, view["client1"].Unread);
                await client.AssertNoFrameAsync(TimeSpan.FromMilliseconds(100));
            }
        }
        finally
        {
            foreach (var (client, _) in inboxes) await client.DisposeAsync();
        }
    }

    /// <summary>One MESSAGE of /user/queue/inbox, read.</summary>
    private sealed record Delta(string Kind, long Id, string? Peer, long? LastMessageId, Delta.Entry Conversation, IReadOnlyList<Delta.Entry> Conversations)
    {
        public sealed record Entry(string Peer, string Name, long LastMessageId, string Preview, int Unread, bool Online, bool Deleted);

        public static Delta Of(StompFrame frame)
        {
            Assert.Equal("/user/queue/inbox", frame.Headers["destination"]);
            using var json = JsonDocument.Parse(frame.Body);
            var root = json.RootElement;
            var kind = root.GetProperty("kind").GetString()!;
            Assert.Equal(kind, frame.Headers["inbox"]);
            var id = long.Parse(root.GetProperty("id").GetString()!, CultureInfo.InvariantCulture);
            Assert.Equal(id, long.Parse(frame.Headers["message-id"]!, CultureInfo.InvariantCulture));
            var last = frame.Headers["last-message-id"] is { } text ? long.Parse(text, CultureInfo.InvariantCulture) : (long?)null;
            return kind == "snapshot"
                ? new Delta(kind, id, null, null, null!, [.. root.GetProperty("conversations").EnumerateArray().Select(Read)])
                : new Delta(kind, id, frame.Headers["peer"], last, Read(root.GetProperty("conversation")), []);
        }

        private static Entry Read(JsonElement e) => new(e.GetProperty("peerId").GetString()!, e.GetProperty("peerName").GetString()!,
            long.Parse(e.GetProperty("lastMessageId").GetString()!, CultureInfo.InvariantCulture), e.GetProperty("preview").GetString()!,
            e.GetProperty("unread").GetInt32(), e.GetProperty("online").GetBoolean(), e.GetProperty("deleted").GetBoolean());
    }
}
