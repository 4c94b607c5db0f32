using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WsBroker.Broker.Auth;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Operations;

/// <summary>The engine alone (AddBroker + MapBroker, no AddChat): no storage, no bus, and still a working broker with
/// readiness and metrics.</summary>
[Collection(MetricsCollection.Name)]
public class EngineHostTests
{
    [Fact]
    public async Task Engine_HostedWithoutChat_RoutesAMessage_IsReady_AndServesMetrics()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration["Auth:SigningKey"] = TestBroker.SigningKey;
        if (TestBroker.Transport is { } transport) builder.Configuration["Broker:Transport"] = transport;
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        BrokerApp.AddBroker(builder.Services, builder.Configuration);
        await using var app = builder.Build();
        BrokerApp.MapBroker(app);
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        try
        {
            Assert.Null(app.Services.GetService<WsBroker.Persistence.PersistenceStores>());
            var baseUri = new Uri(app.Urls.First());
            var token = app.Services.GetRequiredService<JwtIssuer>().Issue("alice", "client", "alice", TimeSpan.FromHours(1));
            await using (var client = await StompTestClient.OpenAsync(new Uri($"ws://{baseUri.Authority}/ws")))
            {
                await client.SendAsync($"CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0");
                await client.ReceiveAsync(StompCommand.Connected);
                await client.SendAsync("SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:s\n\n\0");
                await client.ReceiveAsync(StompCommand.Receipt);
                await client.SendAsync("SEND\ndestination:/topic/x\n\nengine alone\0");
                var message = await client.ReceiveAsync(StompCommand.Message);
                Assert.Equal("/topic/x", message.Headers["destination"]);
                Assert.Equal("engine alone", message.BodyText);
            }

            using var http = new HttpClient { BaseAddress = baseUri };
            var ready = await http.GetAsync(new Uri("/readyz", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            var body = await ready.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("ready", body.GetProperty("status").GetString());
            Assert.Single(body.EnumerateObject());                  // no check registered: nothing else to report
            var metrics = await MetricsText.ScrapeAsync(http);
            Assert.Equal(1, metrics["wsbroker_frames_in_total{command=\"SEND\"}"]);
            Assert.Equal(1, metrics["wsbroker_frames_out_total{command=\"MESSAGE\"}"]);
            Assert.False(metrics.Has("wsbroker_persistence_queue_depth"), "the engine alone has no store");
        }
        finally
        {
            await app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }
}
