using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using WsBroker.Protocol;
using WsBroker.UserSync;
using WsBroker.UserSync.Contracts;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>Long-lived sessions on a real broker (embedded, demo users, <c>Auth:ClockSkewSeconds=0</c>): the scanner
/// expires a session whose token ran out, <c>/api/me</c> answers from the users table, and dev tokens may be short-lived.</summary>
// It reads counters from /metrics: alone, as every test that does (MetricsText).
[Collection(Operations.MetricsCollection.Name)]
public sealed class LongSessionHostTests : IAsyncLifetime
{
    private TestBroker _broker = null!;

    public async Task InitializeAsync() =>
        _broker = await TestBroker.StartAsync("Chat:DemoUsers=true", "Chat:DevTokens=true", "Auth:ClockSkewSeconds=0");

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    private HttpClient Http(string? token = null)
    {
        var http = new HttpClient { BaseAddress = _broker.BaseUri, Timeout = TimeSpan.FromSeconds(10) };
        if (token is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    [Fact]
    public async Task Expiry_StompSession_TokenExpiredErrorThenClose4001_AndCounted()
    {
        await using var client = await StompTestClient.OpenAsync(_broker.WsUri);
        await client.SendAsync($"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\nAuthorization:Bearer {_broker.Token("client1", lifetime: TimeSpan.FromSeconds(4))}\n\n\0");
        await client.ReceiveAsync(StompCommand.Connected);
        var frames = await client.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(15));
        Assert.Equal("token expired", Assert.Single(frames).Headers["message"]);
        Assert.Equal((WebSocketCloseStatus)4001, client.Socket.CloseStatus);
        Assert.Equal("token expired", client.Socket.CloseStatusDescription);
        // The session's end is counted once its run is over, just after the close the client saw.
        var metrics = await MetricsText.ScrapeAsync(_broker.BaseUri);
        for (var i = 0; i < 100 && (metrics["wsbroker_disconnects_total{reason=\"TokenExpired\"}"] < 1 || metrics["wsbroker_sessions_expired_total"] < 1); i++)
        {
            await Task.Delay(50);
            metrics = await MetricsText.ScrapeAsync(_broker.BaseUri);
        }
        Assert.True(metrics["wsbroker_sessions_expired_total"] >= 1);
        Assert.True(metrics["wsbroker_disconnects_total{reason=\"TokenExpired\"}"] >= 1);
    }

    [Fact]
    public async Task Expiry_RawTopicUrl_ClosesWith4001()
    {
        using var raw = new ClientWebSocket();
        await raw.ConnectAsync(new Uri($"{_broker.WsUri}/topic/news?access_token={_broker.Token("client1", lifetime: TimeSpan.FromSeconds(4))}"), CancellationToken.None);
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var error = await raw.ReceiveAsync(buffer, timeout.Token);
        Assert.Equal("{\"error\":\"token expired\"}", Encoding.UTF8.GetString(buffer, 0, error.Count));
        var close = await raw.ReceiveAsync(buffer, timeout.Token);
        Assert.Equal((WebSocketMessageType.Close, (WebSocketCloseStatus)4001, "token expired"), (close.MessageType, raw.CloseStatus, raw.CloseStatusDescription));
    }

    [Fact]
    public async Task Me_RoleAndNameComeFromTheUsersTable_NotTheTokensClaims()
    {
        using var http = Http(_broker.Token("admin1", role: "client"));        // the claim says client; the table says admin
        var me = await http.GetFromJsonAsync<JsonElement>("/api/me");
        Assert.Equal(("admin1", "admin", "Ada Admin", true),
            (me.GetProperty("userId").GetString(), me.GetProperty("role").GetString(), me.GetProperty("name").GetString(), me.GetProperty("known").GetBoolean()));
    }

    [Fact]
    public async Task Me_UnknownOrDeletedUser_Is403WithAProblem()
    {
        using var ghost = Http(_broker.Token("ghost"));
        await AssertProblemAsync(await ghost.GetAsync("/api/me"), HttpStatusCode.Forbidden, "unknown user");
        await _broker.Services.GetRequiredService<IUserEventPublisher>().PublishAsync(new UserDeleted("client3", "", "client", 2, DateTimeOffset.UtcNow));
        using var deleted = Http(_broker.Token("client3"));
        for (var i = 0; i < 200 && (await deleted.GetAsync("/api/me")).StatusCode == HttpStatusCode.OK; i++) await Task.Delay(25);
        await AssertProblemAsync(await deleted.GetAsync("/api/me"), HttpStatusCode.Forbidden, "user deleted");
    }

    [Fact]
    public async Task DevToken_OptionalLifetimeSeconds_IsHonouredAndValidated()
    {
        using var http = Http();
        var answer = await (await http.PostAsJsonAsync("/api/dev/token", new { userId = "client1", lifetimeSeconds = 60 })).Content.ReadFromJsonAsync<JsonElement>();
        var payload = answer.GetProperty("token").GetString()!.Split('.')[1];
        using var claims = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(payload));
        Assert.InRange(claims.RootElement.GetProperty("exp").GetInt64() - DateTimeOffset.UtcNow.ToUnixTimeSeconds(), 55, 61);
        foreach (var bad in new object[] { new { userId = "client1", lifetimeSeconds = 0 }, new { userId = "client1", lifetimeSeconds = 12 * 3600 + 1 } })
            await AssertProblemAsync(await http.PostAsJsonAsync("/api/dev/token", bad), HttpStatusCode.BadRequest, "invalid lifetimeSeconds");
        await AssertProblemAsync(await http.PostAsync("/api/dev/token", new StringContent("{\"userId\":\"client1\",\"lifetimeSeconds\":\"soon\"}", Encoding.UTF8, "application/json")),
            HttpStatusCode.BadRequest, "invalid request");
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string title)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(title, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
    }
}
