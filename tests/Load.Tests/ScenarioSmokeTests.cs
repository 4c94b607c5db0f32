using System.Net.Http.Json;

namespace WsBroker.Load.Tests;

/// <summary>Every scenario, briefly, against an in-process WsBroker: it completes, and nothing is lost. Not a speed test.</summary>
public sealed class ScenarioSmokeTests : IAsyncLifetime
{
    private TestBroker _broker = null!;
    private Uri _ws = null!;

    public async Task InitializeAsync()
    {
        _broker = await TestBroker.StartAsync();
        _ws = _broker.Ws;
    }

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    private async Task<ScenarioResult> RunAsync(params string[] args)
    {
        var options = LoadOptions.Parse([.. args, "--url", _ws.ToString(), "--dev-tokens", "--warmup", "200ms", "--no-progress"])!;
        return await Scenarios.RunAsync(options, new RunStats(), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
    }

    private async Task<string> TokenAsync(string user)
    {
        using var http = new HttpClient();
        using var response = await http.PostAsJsonAsync(new Uri(_broker.Http + "/api/dev/token"), new { userId = user });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("token").GetString()!;
    }

    private LoadOptions Options(params string[] args) => LoadOptions.Parse(["pairs", "--url", _ws.ToString(), "--no-progress", .. args])!;

    [Fact]
    public async Task LoadConnection_LoginAndPasscode_Connects_AndSubscribesWithItsReceipt()
    {
        // The RabbitMQ path: credentials in CONNECT (WsBroker takes the JWT as passcode), no token on the URL.
        var o = Options("--login", "client1", "--passcode", await TokenAsync("client1"));
        await using var connection = await LoadConnection.ConnectAsync(o, null, CancellationToken.None);
        Assert.False(string.IsNullOrEmpty(connection.Session));
        await connection.SubscribeAsync("/topic/load.probe", "p", CancellationToken.None);
        Assert.True(connection.IsOpen);
    }

    [Fact]
    public async Task LoadConnection_RefusedConnect_SaysWhy()
    {
        var o = Options("--login", "client1", "--passcode", "not-a-token");
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => LoadConnection.ConnectAsync(o, null, CancellationToken.None));
        Assert.StartsWith("broker refused CONNECT: authentication failed", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadConnection_RefusedSubscribe_SaysWhy()
    {
        await using var connection = await LoadConnection.ConnectAsync(Options(), await TokenAsync("client1"), CancellationToken.None);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => connection.SubscribeAsync("/topic/private-chat/admin1/client2", "x", CancellationToken.None));
        Assert.Equal("SUBSCRIBE /topic/private-chat/admin1/client2 failed: access denied: not a party of this conversation", ex.Message);
    }

    [Fact]
    public async Task Pairs_CompletesWithDeliveriesBothWays()
    {
        var r = await RunAsync("pairs", "--pairs", "3", "--inflight", "5", "--duration", "1s");
        Assert.Equal(6, r.Connections);
        Assert.True(r.Received > 0);
        Assert.Equal(0, r.Lost);                                       // after the drain, every message sent arrived
        Assert.True(r.P50Ms > 0);
        Assert.Equal(0, r.Errors);
    }

    [Fact]
    public async Task FanOut_EverySubscriberGetsEveryMessage()
    {
        var r = await RunAsync("fanout", "--subscribers", "25", "--rate", "400", "--duration", "1s");
        Assert.True(r.Sent > 0);
        Assert.Equal(0, r.Lost);
        Assert.Equal(r.Sent * 25, r.Received);
        Assert.Equal(0, r.Extra["subscribers_with_loss"]);
    }

    [Theory]
    [InlineData("system")]
    [InlineData("lean")]
    public async Task FanOut_OverSourceAddresses_EverySubscriberGetsEveryMessage(string client)
    {
        var r = await RunAsync("fanout", "--subscribers", "25", "--rate", "200", "--duration", "1s", "--source-addresses", "3", "--connect-concurrency", "8",
            "--client", client);
        Assert.True(r.Sent > 0);
        Assert.Equal(0, r.Lost);
        Assert.Equal(r.Sent * 25, r.Received);
    }

    [Fact]
    public async Task Rate_DeliversTheOfferedLoadWithoutLoss()
    {
        var r = await RunAsync("rate", "--pairs", "2", "--rate", "300", "--duration", "1s");
        Assert.Equal(0, r.Lost);
        Assert.InRange(r.Sent, 300, 400);
        Assert.True(r.P99Ms >= r.P50Ms);
    }

    [Fact]
    public async Task Idle_HoldsEveryConnection()
    {
        var r = await RunAsync("idle", "--connections", "50", "--duration", "300ms", "--pid", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(50, r.Extra["held"]);
        Assert.Equal(0, r.Lost);
        Assert.True(r.Extra.ContainsKey("bytes_per_connection"));
    }

    [Fact]
    public async Task ChatRate_DeliversStoredMessagesToTheAdmin_AfterTheirCommit()
    {
        var r = await RunAsync("chat-rate", "--pairs", "3", "--rate", "300", "--duration", "1s");
        Assert.InRange(r.Sent, 300, 400);
        Assert.Equal(0, r.Lost);                                       // every message sent reached the admin
        Assert.Equal(0, r.Extra["rejected"]);
        Assert.Equal(0, r.Errors);
        Assert.True(r.P99Ms >= r.P50Ms && r.P50Ms > 0);
    }

    [Fact]
    public async Task Chat_StoresMessagesWithReceipts()
    {
        var r = await RunAsync("chat", "--pairs", "3", "--inflight", "4", "--duration", "1s");
        Assert.True(r.Received > 0, "receipts (stored messages)");
        Assert.Equal(0, r.Extra["rejected"]);
        Assert.Equal(0, r.Errors);
        Assert.Equal(0, r.Lost);                                       // every message sent got its receipt
    }
}
