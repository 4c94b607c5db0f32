using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Reflection;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Tests.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Transport;

/// <summary>Runs alone (<see cref="Engine.TimingCollection"/>): a heart-beat test's margin (beats every 250 ms against a
/// 1 s timeout) is too small beside other suites.</summary>
[Collection(Engine.TimingCollection.Name)]
public class InlineSocketCompletionsTests
{
    [Fact]
    public void TryEnable_OnThisRuntime_SetsTheSocketsOwnSwitch()
    {
        // The per-socket switch is internal to System.Net.Sockets: if a runtime renames it, this fails, not production.
        if (!OperatingSystem.IsLinux()) return;                    // the switch is the Unix socket engine's
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        SetInline(socket, false);                                   // whatever DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS says

        Assert.True(InlineSocketCompletions.TryEnable(socket));

        Assert.True(Inline(socket));
    }

    [Fact]
    public void TryEnable_TheOtherSocketsOfTheProcess_KeepTheirs()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var a = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var b = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        SetInline(b, false);

        InlineSocketCompletions.TryEnable(a);

        Assert.False(Inline(b));
    }

    [Theory]
    [InlineData("", true)]
    [InlineData("\n", true)]
    [InlineData("\r\n", true)]
    [InlineData("\n\r\n\n", true)]
    [InlineData("\r", false)]                                       // a lone CR starts a frame for the parser
    [InlineData("\n\r", false)]
    [InlineData("\r\r\n", false)]
    [InlineData("\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n", false)]         // 17: more than a client at rest sends
    [InlineData("\nS", false)]
    [InlineData("SEND", false)]
    public void OnlyHeartBeats_LfAndCrLf_AFew(string bytes, bool only)
    {
        var services = SessionServices.Create(new BrokerOptions(), "only-heart-beats-signing-key-0123456789abcdef");
        var session = new StompSession(new InMemoryTransport(), services, "s", null);

        Assert.Equal(only, session.OnlyHeartBeats(new ReadOnlySequence<byte>(System.Text.Encoding.ASCII.GetBytes(bytes))));
    }

    [Fact]
    public async Task OnTheSocketEventThread_BeatsKeepTheSessionAlive_AndFramesAreHandledOnTheThreadPool()
    {
        if (TestBroker.Transport is "AspNetCore") return;           // the setting is the pipeline transport's
        var probe = new ThreadProbe();
        await using var broker = await TestBroker.StartAsync(s => s.AddSingleton<ISendHandler>(probe),
            "Broker:HeartBeatReceiveMs=1000", "Broker:HeartBeatSendMs=0");
        await using var client = await broker.ConnectAsync("alice", heartBeat: "1000,0");  // beats every second, owed
        var session = Assert.Single(broker.Services.GetRequiredService<SessionRegistry>().All);
        var socket = ((PipeWebSocketTransport)session.Transport).Connection.Features.Get<IConnectionSocketFeature>()!.Socket;
        Assert.True(Inline(socket));                                // its reads complete on the event thread

        // Beats only, for two and a half receive intervals: each is read and noted on the event thread, and the session
        // lives (silent, it would be closed after two).
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(250);
            await client.SendAsync("\n");
        }
        Assert.False(session.IsClosing);

        // A SEND after each beat: every one is handled on the thread pool.
        for (var i = 0; i < 10; i++)
        {
            await client.SendAsync("\n");
            await client.SendAsync($"SEND\ndestination:/topic/inline-probe\nreceipt:r{i}\n\n{i}\0");
            var receipt = await client.ReceiveAsync(StompCommand.Receipt);
            Assert.Equal($"r{i}", receipt.Headers["receipt-id"]);
        }
        Assert.Equal(10, probe.Threads.Count);
        Assert.All(probe.Threads, onPool => Assert.True(onPool));
        await client.AssertNoFrameAsync(TimeSpan.FromMilliseconds(300));   // no heart-beat timeout ERROR
    }

    [Fact]
    public async Task AFloodOfHeartBeats_OnTheEventThread_IsHandedToTheThreadPoolAfterAFewReads()
    {
        // A transport whose reads complete inline on the thread that writes the client's bytes (as the socket event thread
        // does with inline completions) and that hands over one byte per read (one beat per WebSocket frame).
        var transport = new OneBytePerReadTransport();
        var services = SessionServices.Create(new BrokerOptions(), "inline-flood-signing-key-0123456789abcdef");
        var session = new StompSession(transport, services, "flood", null);
        var run = session.RunAsync();
        const int Beats = 10_000;

        using var written = new ManualResetEventSlim();
        using var done = new ManualResetEventSlim();                  // the flooder lives on: its thread id is not reused
        var flooder = new Thread(() =>
        {
            transport.Client.Write(Enumerable.Repeat((byte)'\n', Beats).ToArray());
            transport.Client.FlushAsync().AsTask().GetAwaiter().GetResult();   // the pump runs inside this, until it hops
            written.Set();
            done.Wait(TimeSpan.FromSeconds(30));
        });
        flooder.Start();
        Assert.True(written.Wait(TimeSpan.FromSeconds(10)));

        // The flooding thread read a few beats itself, then the rest went to the thread pool.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (transport.BytesRead < Beats && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.InRange(transport.ReadsOn(flooder.ManagedThreadId), 1, 9);
        Assert.Equal(Beats, transport.BytesRead);
        Assert.False(session.IsClosing);                               // beats are no error
        done.Set();
        flooder.Join();

        await transport.Client.CompleteAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AFloodOfPings_ReadOnTheEventThread_IsAnsweredFromTheThreadPool()
    {
        var peer = new WebSocketPeer(inlineReads: true);
        var read = peer.Server.ReadAsync(CancellationToken.None).AsTask();   // waiting for the client
        var flood = new List<byte>();
        for (var i = 0; i < 200; i++) flood.AddRange(WebSocketPeer.Frame(WebSocketOpcode.Ping, "p"u8));
        flood.AddRange(WebSocketPeer.Frame(WebSocketOpcode.Text, "\n"u8));

        using var written = new ManualResetEventSlim();
        using var done = new ManualResetEventSlim();                  // the flooder lives on: its thread id is not reused
        var flooder = new Thread(() =>
        {
            peer.WriteNow([.. flood]);                              // the server's read runs inside this write, until it hops
            written.Set();
            done.Wait(TimeSpan.FromSeconds(30));
        });
        flooder.Start();
        Assert.True(written.Wait(WebSocketPeer.Timeout));

        var result = await read.WaitAsync(WebSocketPeer.Timeout);
        Assert.Equal("\n"u8.ToArray(), result.Buffer.ToArray());
        for (var i = 0; i < 200; i++) Assert.Equal(WebSocketOpcode.Pong, (await peer.ReceiveAsync()).Opcode);
        Assert.NotEmpty(peer.ServerFlushThreads);
        Assert.DoesNotContain(flooder.ManagedThreadId, peer.ServerFlushThreads);   // no pong was sent from the event thread
        done.Set();
        flooder.Join();
    }

    private static PropertyInfo Switch(Socket socket) =>
        socket.SafeHandle.GetType().GetProperty("PreferInlineCompletions", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)!;

    private static bool Inline(Socket socket) => (bool)Switch(socket).GetValue(socket.SafeHandle)!;

    private static void SetInline(Socket socket, bool value) => Switch(socket).SetValue(socket.SafeHandle, value);

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

    // Reads complete on the writer's thread (Inline reader scheduler) and return one byte each; notes each read's thread.
    private sealed class OneBytePerReadTransport : IConnectionTransport
    {
        private readonly Pipe _pipe = new(new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 0, useSynchronizationContext: false));
        private readonly ConcurrentDictionary<int, int> _readsByThread = new();
        private ReadOnlySequence<byte> _read;
        private int _bytesRead;

        public PipeWriter Client => _pipe.Writer;
        public int BytesRead => Volatile.Read(ref _bytesRead);
        public int ReadsOn(int threadId) => _readsByThread.GetValueOrDefault(threadId);
        public PipeReader? Waitable => _pipe.Reader;

        public async ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken)
        {
            var result = await _pipe.Reader.ReadAsync(cancellationToken);
            if (result.Buffer.IsEmpty && result.IsCompleted)
            {
                _pipe.Reader.AdvanceTo(result.Buffer.End);
                return TransportReadResult.Completed;
            }
            _readsByThread.AddOrUpdate(Environment.CurrentManagedThreadId, 1, (_, n) => n + 1);
            _read = result.Buffer.Slice(0, 1);
            return new TransportReadResult(_read, EndOfMessage: true, IsCompleted: false);
        }

        public void AdvanceTo(SequencePosition consumed)
        {
            Interlocked.Add(ref _bytesRead, (int)_read.Slice(0, consumed).Length);
            _pipe.Reader.AdvanceTo(consumed);
        }

        public ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken) => ValueTask.CompletedTask;
        public ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken) => ValueTask.CompletedTask;
        public void Abort() => _pipe.Reader.CancelPendingRead();
        public void KeepAlive(long nowMs) { }
    }
}
