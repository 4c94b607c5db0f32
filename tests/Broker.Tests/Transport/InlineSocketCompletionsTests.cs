using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Transport;

public class InlineSocketCompletionsTests
{
    [Fact]
    public void TryEnable_OnThisRuntime_SetsTheSocketsOwnSwitch()
    {
        // The per-socket switch is internal to System.Net.Sockets: if a runtime renames it, this fails, not production.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Assert.False(Inline(socket));

        Assert.True(InlineSocketCompletions.TryEnable(socket));

        Assert.True(Inline(socket));
    }

    [Fact]
    public void TryEnable_TheOtherSocketsOfTheProcess_KeepTheirs()
    {
        using var a = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var b = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        InlineSocketCompletions.TryEnable(a);

        Assert.False(Inline(b));
    }

    [Fact]
    public async Task Frames_ReadOnTheSocketEventThread_AreHandledOnTheThreadPool_AndHeartBeatsKeepTheSessionAlive()
    {
        if (TestBroker.Transport is "AspNetCore") return;           // the setting is the pipeline transport's
        var probe = new ThreadProbe();
        await using var broker = await TestBroker.StartAsync(s => s.AddSingleton<ISendHandler>(probe),
            "Broker:HeartBeatReceiveMs=500", "Broker:HeartBeatSendMs=0");
        await using var client = await broker.ConnectAsync("alice", heartBeat: "0,500");

        // Beats for 2.5 s (five receive intervals), each in its own WebSocket message as a browser sends them, and a SEND
        // after each: every beat is read on the event thread, every SEND is handled on the thread pool.
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(250);
            await client.SendAsync("\n");
            await client.SendAsync($"SEND\ndestination:/topic/inline-probe\nreceipt:r{i}\n\n{i}\0");
            var receipt = await client.ReceiveAsync(StompCommand.Receipt);
            Assert.Equal($"r{i}", receipt.Headers["receipt-id"]);
        }

        Assert.Equal(10, probe.Threads.Count);
        Assert.All(probe.Threads, onPool => Assert.True(onPool));
        await client.AssertNoFrameAsync(TimeSpan.FromMilliseconds(300));   // no heart-beat timeout ERROR
    }

    private static bool Inline(Socket socket) =>
        (bool)socket.SafeHandle.GetType().GetProperty("PreferInlineCompletions", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)!
            .GetValue(socket.SafeHandle)!;

    // Claims SENDs to /topic/inline-probe, notes whether each ran on a thread-pool thread, and answers its receipt.
    private sealed class ThreadProbe : ISendHandler
    {
        public ConcurrentQueue<bool> Threads { get; } = new();

        public bool Handles(Destination destination) => destination.Text == "/topic/inline-probe";

        public ValueTask HandleAsync(SendContext context)
        {
            Threads.Enqueue(Thread.CurrentThread.IsThreadPoolThread);
            context.Receipt();
            return ValueTask.CompletedTask;
        }
    }
}
