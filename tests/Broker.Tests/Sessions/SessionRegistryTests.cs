using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>The registry's sessions by user: a user with many sessions stays online until the last one leaves, whatever the
/// order they leave in (each leaves its place in O(1): the last one moves in).</summary>
public sealed class SessionRegistryTests
{
    [Fact]
    public async Task A_user_with_many_sessions_goes_offline_once_after_the_last_whatever_the_order()
    {
        await using var broker = await TestBroker.StartAsync();
        var registry = broker.Services.GetRequiredService<SessionRegistry>();
        var events = new List<string>();
        registry.UserOnline += user => { lock (events) events.Add("online " + user); };
        registry.UserOffline += user => { lock (events) events.Add("offline " + user); };
        var clients = new List<StompTestClient>();
        for (var i = 0; i < 6; i++) clients.Add(await broker.ConnectAsync("wall"));
        await using var other = await broker.ConnectAsync("desk");

        var open = 7;
        foreach (var leaving in new[] { 2, 0, 5, 1 })                  // the middle, the first, the last, the new first
        {
            await clients[leaving].DisposeAsync();
            open--;
            await WaitUntilAsync(() => registry.Count == open);
            Assert.True(registry.IsOnline("wall"));
        }
        // The two left are the ones the registry still finds by user.
        Assert.Equal(2, registry.CloseUserSessions("wall", "closed by the test", DisconnectReason.UserDeleted));
        foreach (var kept in new[] { 3, 4 })
        {
            var frames = await clients[kept].ReceiveUntilClosedAsync();
            Assert.Contains(frames, f => f.Command == StompCommand.Error && f.Headers["message"] == "closed by the test");
        }
        await WaitUntilAsync(() => !registry.IsOnline("wall"));
        // UserOffline is raised after the registry's gate is left: it may come a moment after IsOnline turns false.
        await WaitUntilAsync(() => { lock (events) return events.Count >= 3; });
        Assert.True(registry.IsOnline("desk"));
        lock (events) Assert.Equal(["online wall", "online desk", "offline wall"], events);
        foreach (var client in clients) await client.DisposeAsync();
    }

    [Fact]
    public void All_HoldsExactlyTheOpenSessions_AsTheyComeAndGoAndTheArrayGrows()
    {
        var services = SessionServices.Create(new WsBroker.Broker.Options.BrokerOptions(), "registry-signing-key-0123456789abcdefghij");
        var registry = services.Sessions;
        var open = new HashSet<BrokerSession>();
        var ended = 0;
        registry.SessionEnded += _ => ended++;
        BrokerSession New(int i) => new StompSession(new InMemoryTransport(), services, "s" + i, null);
        registry.Remove(New(-1));                                   // never added: nothing happens
        for (var i = 0; i < 1_000; i++)                             // past the first arrays (64, 128, ...)
        {
            var session = New(i);
            registry.Add(session);
            registry.Add(session);                                  // twice: still once
            open.Add(session);
        }
        foreach (var leaving in open.Where((_, i) => i % 3 == 0).ToList())
        {
            registry.Remove(leaving);
            registry.Remove(leaving);                               // twice: no second SessionEnded
            open.Remove(leaving);
        }
        for (var i = 1_000; i < 1_500; i++)                         // take the freed slots, then new ones
        {
            var session = New(i);
            registry.Add(session);
            open.Add(session);
        }

        Assert.Equal(1_000 - open.Count + 500, ended);              // one SessionEnded per session removed
        Assert.Equal(open.Count, registry.Count);
        var seen = new List<BrokerSession>();
        foreach (var session in registry.All) seen.Add(session);    // the scanner's walk (the struct enumerator)
        Assert.Equal(open.Count, seen.Count);
        Assert.True(open.SetEquals(seen));
        Assert.True(open.SetEquals(registry.All.ToList()));         // and through IEnumerable (LINQ)
    }

    [Fact]
    public async Task All_WalkedWhileSessionsComeAndGoAndTheArrayGrows_NeverYieldsOneTwice()
    {
        var services = SessionServices.Create(new WsBroker.Broker.Options.BrokerOptions(), "registry-signing-key-0123456789abcdefghij");
        var registry = services.Sessions;
        var kept = Enumerable.Range(0, 100).Select(i => new StompSession(new InMemoryTransport(), services, "kept" + i, null)).ToList();
        foreach (var session in kept) registry.Add(session);
        using var stop = new CancellationTokenSource();
        var walks = 0;
        var walking = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var walker = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var seen = new HashSet<BrokerSession>(ReferenceEqualityComparer.Instance);
                foreach (var session in registry.All) Assert.True(seen.Add(session), "a session twice in one walk");
                Assert.True(kept.All(seen.Contains), "a session open all along was missed");
                Interlocked.Increment(ref walks);
                walking.TrySetResult();
            }
        });
        await walking.Task.WaitAsync(TimeSpan.FromSeconds(10));         // the walker runs before the churn begins
        // Churn past several doublings (64 → 8,192 slots) while the walker walks.
        var churn = new List<BrokerSession>();
        for (var i = 0; i < 5_000; i++)
        {
            var session = new StompSession(new InMemoryTransport(), services, "c" + i, null);
            registry.Add(session);
            churn.Add(session);
            if (i % 3 == 2) { registry.Remove(churn[i - 2]); }
        }
        // And one whole walk after the churn, however late the walker's thread runs.
        var afterChurn = Volatile.Read(ref walks) + 1;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref walks) <= afterChurn && !walker.IsCompleted && DateTime.UtcNow < deadline) await Task.Delay(10);
        stop.Cancel();
        await walker.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(Volatile.Read(ref walks) > afterChurn, "the walker did not walk after the churn");
        Assert.Equal(100 + 5_000 - 5_000 / 3, registry.Count);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }
}
