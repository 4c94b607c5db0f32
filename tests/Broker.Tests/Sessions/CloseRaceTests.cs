using System.Text;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Options;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>
/// A session closed by the broker (<see cref="BrokerSession.CloseWithError"/>: a backplane gap, a shutdown, the scanner)
/// while its client keeps sending: the read loop sees the close and ends at once, and its end must not complete the
/// outbox before the ERROR is in it (the ERROR would be lost and the connection dropped without a word, as a cluster test
/// once saw: its client reconnected with no "backplane gap").
/// </summary>
public sealed class CloseRaceTests
{
    private const string Key = "close-race-tests-signing-key-0123456789abcdef";

    [Fact]
    public async Task CloseWithError_WhileTheClientKeepsSending_TheErrorIsAlwaysSentBeforeTheClose()
    {
        var services = SessionServices.Create(new BrokerOptions(), Key);
        var token = new JwtIssuer(Microsoft.Extensions.Options.Options.Create(new AuthOptions { SigningKey = Key })).Issue("u1", "client", "U", TimeSpan.FromHours(1));
        var connect = Encoding.UTF8.GetBytes($"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0");
        var beats = Encoding.UTF8.GetBytes(new string('\n', 16));
        var lost = new List<string>();
        const int Rounds = 400;
        for (var round = 0; round < Rounds; round++)
        {
            var transport = new InMemoryTransport();
            var session = new StompSession(transport, services, $"race-{round}", null);
            var client = new InMemoryStompClient(transport);
            var run = session.RunAsync();
            await transport.Client.WriteAsync(connect);
            Assert.Equal(StompCommand.Connected, (await client.ReceiveAsync()).Command);
            // The client keeps the read loop busy (heart-beats, nothing answered) while the broker closes the session.
            using var stop = new CancellationTokenSource();
            var sending = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try { await transport.Client.WriteAsync(beats); }
                    catch (InvalidOperationException) { return; }          // the session aborted: the pipe is completed
                }
            });
            await Task.Delay(round % 3);
            session.CloseWithError("backplane gap", null, DisconnectReason.BackplaneGap);
            var frames = await client.ReceiveUntilClosedAsync();
            await run.WaitAsync(TimeSpan.FromSeconds(10));
            await stop.CancelAsync();
            await sending.WaitAsync(TimeSpan.FromSeconds(10));
            if (transport.Aborted || frames.Count != 1 || frames[0].Command != StompCommand.Error || frames[0].Headers["message"] != "backplane gap")
                lost.Add($"round {round}: aborted {transport.Aborted}, closed with {transport.ClosedWith}, frames [{string.Join(", ", frames.Select(f => f.Command))}]");
        }
        Assert.True(lost.Count == 0, $"{lost.Count} of {Rounds} closes lost their ERROR:\n{string.Join("\n", lost.Take(5))}");
    }
}
