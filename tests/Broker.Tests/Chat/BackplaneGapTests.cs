using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>After a backplane outage, sessions that can resume with since are closed so that their clients do; the others
/// keep running (BackplaneGap; the cluster test in tests/js/cluster.test.mjs runs it against a real RabbitMQ restart).</summary>
public sealed class BackplaneGapTests : IAsyncLifetime
{
    private TestBroker _broker = null!;

    public async Task InitializeAsync() => _broker = await TestBroker.StartAsync("Chat:DemoUsers=true");

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    [Fact]
    public async Task Sessions_with_a_chat_or_inbox_subscription_are_closed_with_an_error_and_the_others_keep_running()
    {
        await using var customer = await _broker.ConnectAsync("client1");
        await customer.SendAsync("SUBSCRIBE\nid:chat\ndestination:/topic/private-chat/admin1/client1\nreceipt:r\n\n\0");
        await customer.ReceiveAsync(StompCommand.Receipt);
        await using var admin = await _broker.ConnectAsync("admin1", "admin");
        await admin.SendAsync("SUBSCRIBE\nid:all\ndestination:/topic/private-chat/admin1/*\nreceipt:r\n\n\0");
        await admin.ReceiveAsync(StompCommand.Receipt);
        await using var inbox = await _broker.ConnectAsync("admin1", "admin");
        await inbox.SendAsync("SUBSCRIBE\nid:inbox\ndestination:/user/queue/inbox\nreceipt:r\n\n\0");
        await inbox.ReceiveUntilReceiptAsync("r");                // the snapshot, then the RECEIPT
        await using var reader = await _broker.ConnectAsync("client2");
        await reader.SendAsync("SUBSCRIBE\nid:news\ndestination:/topic/news\nreceipt:r\n\n\0");
        await reader.ReceiveAsync(StompCommand.Receipt);

        _broker.Services.GetServices<IHostedService>().OfType<BackplaneGap>().Single().OnResumed();

        foreach (var closed in new[] { customer, admin, inbox })
        {
            var frames = await closed.ReceiveUntilClosedAsync();
            var error = Assert.Single(frames, f => f.Command == StompCommand.Error);
            Assert.Equal("backplane gap", error.Headers["message"]);
            Assert.Contains("since", error.BodyText);
        }
        await reader.SendAsync("SEND\ndestination:/topic/news\nreceipt:sent\n\nstill here\0");
        var message = await reader.ReceiveAsync(StompCommand.Message);
        Assert.Equal("still here", message.BodyText);
    }

    // The closes are spread (500 every 50 ms), but every resumable subscription is fenced when the gap is reported: a
    // message published right after it reaches none of them, not even the sessions closed in a later step. Had one got it,
    // its client would resume with a since past what it missed.
    [Fact]
    public async Task Nothing_published_after_the_gap_reaches_a_session_waiting_for_its_close()
    {
        const string destination = "/topic/private-chat/admin1/client1";
        var customers = new List<StompTestClient>();
        try
        {
            for (var i = 0; i < BackplaneGap.SessionsPerStep + 20; i++)
            {
                var customer = await _broker.ConnectAsync("client1");
                customers.Add(customer);
                await customer.SendAsync($"SUBSCRIBE\nid:chat\ndestination:{destination}\nreceipt:r\n\n\0");
                await customer.ReceiveAsync(StompCommand.Receipt);
            }

            _broker.Services.GetServices<IHostedService>().OfType<BackplaneGap>().Single().OnResumed();
            _broker.Services.GetRequiredService<BrokerServices>().Backplane.Publish(
                SharedMessage.Create(long.MaxValue / 2, destination, [], "after the gap"u8.ToArray()));

            foreach (var customer in customers)
            {
                var frames = await customer.ReceiveUntilClosedAsync();
                Assert.DoesNotContain(frames, f => f.Command == StompCommand.Message);
                Assert.Equal("backplane gap", Assert.Single(frames, f => f.Command == StompCommand.Error).Headers["message"]);
            }
        }
        finally
        {
            foreach (var customer in customers) await customer.DisposeAsync();
        }
    }
}
