using System.Net.WebSockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WsBroker.Broker.Access;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Tests.Hosting;

/// <summary>What both transports decide before an upgrade that takes time to judge (a token, the access policy's store).</summary>
public sealed class UpgradeAdmissionTests
{
    [Fact]
    public async Task UpgradesUnderWayAtOnce_NeverTakeTheNodePastItsWebSocketLimit()
    {
        // The policy takes its time, as a database lookup does: every upgrade passes the capacity check before any session
        // is counted. Places are held from the check on, so no more than the limit get their 101.
        await using var broker = await TestBroker.StartAsync(s => s.AddSingleton<IAccessPolicy>(new Policy(TimeSpan.FromMilliseconds(300))),
            "Broker:MaxConnections=5");
        var sockets = Enumerable.Range(0, 40).Select(_ => new ClientWebSocket()).ToArray();
        try
        {
            var attempts = sockets.Select(async (socket, i) =>
            {
                try
                {
                    await socket.ConnectAsync(new Uri($"{broker.WsUri}/topic/capacity?access_token={broker.Token($"u{i}")}"), CancellationToken.None)
                        .WaitAsync(StompTestClient.Timeout);
                    return true;
                }
                catch (WebSocketException ex) when (ex.Message.Contains("503", StringComparison.Ordinal))
                {
                    return false;
                }
            });
            var upgraded = (await Task.WhenAll(attempts)).Count(ok => ok);
            Assert.InRange(upgraded, 1, 5);
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task PolicyThatFails_AnswersTheUpgrade500_AndTheNextIsTakenAgain(bool timesOut)
    {
        var policy = new Policy(TimeSpan.Zero) { Fail = true, FailAsTimeout = timesOut };
        await using var broker = await TestBroker.StartAsync(s => s.AddSingleton<IAccessPolicy>(policy), "Broker:MaxConnections=1");
        using (var refused = new ClientWebSocket())
        {
            var error = await Assert.ThrowsAsync<WebSocketException>(() =>
                refused.ConnectAsync(new Uri($"{broker.WsUri}/topic/failing?access_token={broker.Token("u")}"), CancellationToken.None)
                    .WaitAsync(StompTestClient.Timeout));
            Assert.Contains("500", error.Message, StringComparison.Ordinal);
        }
        policy.Fail = false;                                          // its place was given back: the one place is free
        using var taken = new ClientWebSocket();
        await taken.ConnectAsync(new Uri($"{broker.WsUri}/topic/failing?access_token={broker.Token("u")}"), CancellationToken.None)
            .WaitAsync(StompTestClient.Timeout);
        Assert.Equal(WebSocketState.Open, taken.State);
    }

    [Fact]
    public async Task UpgradeJudgedWhileTheServerBeginsToStop_IsRefused_NotLeftOutOfTheShutdown()
    {
        var policy = new Policy(TimeSpan.Zero) { Held = new(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var broker = await TestBroker.StartAsync(s => s.AddSingleton<IAccessPolicy>(policy));
        using var client = new ClientWebSocket();
        var connect = client.ConnectAsync(new Uri($"{broker.WsUri}/topic/late?access_token={broker.Token("u")}"), CancellationToken.None);
        await policy.Asked.Task.WaitAsync(StompTestClient.Timeout);
        var stop = broker.StopAsync();                                // stopping begins while the policy is asked
        var stopping = broker.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!stopping.IsCancellationRequested && DateTime.UtcNow < deadline) await Task.Delay(10);
        policy.Held.SetResult();                                      // and only then does it answer
        var error = await Assert.ThrowsAsync<WebSocketException>(() => connect.WaitAsync(StompTestClient.Timeout));
        Assert.Contains("503", error.Message, StringComparison.Ordinal);
        await stop;
    }

    [Fact]
    public async Task AspNetCore_KestrelsUpgradeLimitReachedPastAdmission_Is503AndCounted_NotA500()
    {
        // Kestrel's own limit on upgraded connections sits past the share (a burst racing past admission reaches it); here
        // it is set to one, so the second upgrade passes admission and finds it.
        await using var broker = await TestBroker.StartAsync(
            s => s.PostConfigure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(k => k.Limits.MaxConcurrentUpgradedConnections = 1),
            "Broker:Transport=AspNetCore");
        await using (var first = await broker.ConnectAsync("first"))
        {
            using var second = new ClientWebSocket();
            second.Options.AddSubProtocol("v12.stomp");
            var refused = await Assert.ThrowsAsync<WebSocketException>(() => second.ConnectAsync(broker.WsUri, CancellationToken.None)
                .WaitAsync(StompTestClient.Timeout));
            Assert.Contains("503", refused.Message, StringComparison.Ordinal);
            Assert.True((await MetricsText.ScrapeAsync(broker.BaseUri))["wsbroker_connections_refused_total{reason=\"websocket_limit\"}"] >= 1);
        }
        // The place is Kestrel's again once the first has gone.
        await using var again = await broker.ConnectOncePlaceIsFreeAsync("again");
    }

    [Theory]
    [InlineData("8")]
    [InlineData("14")]
    public async Task OtherWebSocketVersion_Is426_WithTheVersionThisServerSpeaks(string version)
    {
        await using var broker = await TestBroker.StartAsync();
        var head = await ExchangeHeadsAsync(broker, "/ws", $"Sec-WebSocket-Version: {version}\r\n");
        Assert.StartsWith("HTTP/1.1 426", head, StringComparison.Ordinal);
        Assert.Contains("\r\nSec-WebSocket-Version: 13\r\n", head, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task SubProtocol_IsEchoedInTheClientsSpelling()
    {
        await using var broker = await TestBroker.StartAsync();
        var head = await ExchangeHeadsAsync(broker, "/ws", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: V11.Stomp, other\r\n");
        Assert.StartsWith("HTTP/1.1 101", head, StringComparison.Ordinal);
        Assert.Contains("\r\nSec-WebSocket-Protocol: V11.Stomp\r\n", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("v11.stomp", head, StringComparison.Ordinal);
    }

    // A hand-made upgrade request; returns the response's head.
    private static async Task<string> ExchangeHeadsAsync(TestBroker broker, string path, string fields)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(broker.BaseUri.Host, broker.BaseUri.Port);
        var stream = tcp.GetStream();
        var key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {broker.BaseUri.Authority}\r\n"
            + $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{fields}\r\n"));
        var received = new System.Text.StringBuilder();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(StompTestClient.Timeout);
        while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, cts.Token);
            if (read == 0) break;
            received.Append(System.Text.Encoding.Latin1.GetString(buffer, 0, read));
        }
        var text = received.ToString();
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return end < 0 ? text : text[..(end + 2)];
    }

    private sealed class Policy(TimeSpan delay) : IAccessPolicy
    {
        public bool Fail { get; set; }

        public bool FailAsTimeout { get; init; }

        /// <summary>Completes when a CanConnectAsync has begun.</summary>
        public TaskCompletionSource Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>When set, CanConnectAsync answers once it completes (instead of after the delay).</summary>
        public TaskCompletionSource? Held { get; init; }

        public async ValueTask<string?> CanConnectAsync(BrokerPrincipal user)
        {
            Asked.TrySetResult();
            await (Held?.Task ?? Task.Delay(delay));
            if (!Fail) return null;
            // An HTTP client's timeout inside a policy is a TaskCanceledException.
            throw FailAsTimeout ? new TaskCanceledException("the policy's store timed out") : new InvalidOperationException("the policy's store is down");
        }

        public ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, Destination destination) => ValueTask.FromResult<string?>(null);

        public ValueTask<string?> CanSendAsync(BrokerPrincipal user, Destination destination) => ValueTask.FromResult<string?>(null);
    }
}
