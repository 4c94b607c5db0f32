using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker.Chat;
using WsBroker.Persistence;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>An inbox whose store read began before the backplane gap was reported may lack what other nodes committed
/// during the outage: it is read again when that read ends, before anyone gets it.</summary>
public sealed class InboxGapTests : IAsyncLifetime
{
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _reads;
    private TestBroker _broker = null!;

    public async Task InitializeAsync() => _broker = await TestBroker.StartAsync(
        services => services.AddSingleton<InboxLoader>(sp => new GatedLoader(sp.GetRequiredService<IMessageStore>(), sp.GetRequiredService<IUserStore>(), this)),
        "Chat:DemoUsers=true");

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    // Every read is counted; the first waits until the test lets it go.
    private sealed class GatedLoader(IMessageStore messages, IUserStore users, InboxGapTests test) : InboxLoader(messages, users)
    {
        public override async Task<InboxLoad> LoadAsync(string userId, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref test._reads) == 1)
            {
                test._started.TrySetResult();
                await test._release.Task.WaitAsync(cancellationToken);
            }
            return await base.LoadAsync(userId, cancellationToken);
        }
    }

    [Fact]
    public async Task An_inbox_being_read_when_the_gap_is_reported_is_read_again_before_its_snapshot()
    {
        await using var admin = await _broker.ConnectAsync("admin1", "admin");
        await admin.SendAsync("SUBSCRIBE\nid:inbox\ndestination:/user/queue/inbox\nreceipt:inbox\n\n\0");
        await _started.Task.WaitAsync(TimeSpan.FromSeconds(10));

        _broker.Services.GetRequiredService<InboxFeed>().BackplaneResumed();   // posted before the read ends
        _release.TrySetResult();

        var frames = await admin.ReceiveUntilReceiptAsync("inbox");
        Assert.Equal(2, Volatile.Read(ref _reads));
        var snapshot = Assert.Single(frames, f => f.Command == StompCommand.Message);
        Assert.Equal("snapshot", JsonDocument.Parse(snapshot.BodyText).RootElement.GetProperty("kind").GetString());
    }
}
