using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Connections;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker;

/// <summary>Builds the broker host: the one factory Program.cs and the tests use.</summary>
public static class BrokerApp
{
    /// <summary>Creates the application. <paramref name="configure"/> may change configuration or services before it is built.</summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddEnvironmentVariables("WSBROKER_");
        builder.WebHost.UseKestrel(k => k.AddServerHeader = false);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
        AddBroker(builder.Services, builder.Configuration);
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        MapBroker(app);
        return app;
    }

    /// <summary>Registers the engine: options (validated at start), router, sessions, JWT, default policy.</summary>
    public static IServiceCollection AddBroker(IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<BrokerOptions>().Bind(configuration.GetSection(BrokerOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<BrokerOptions>>(new Validator<BrokerOptions>(o => o.Validate()));
        services.AddOptions<AuthOptions>().Bind(configuration.GetSection(AuthOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuthOptions>>(new Validator<AuthOptions>(o => o.Validate()));
        services.AddSingleton<TopicRouter>();
        services.AddSingleton<SessionRegistry>();
        services.AddSingleton<BrokerMetrics>();
        services.AddSingleton<JwtValidator>();
        services.AddSingleton<JwtIssuer>();
        services.AddSingleton<BrokerServices>();
        services.AddSingleton<StompConnectionHandler>();
        services.AddSingleton<IDestinationPolicy, AllowAuthenticatedPolicy>();
        services.AddHostedService<HeartBeatScanner>();
        services.AddHostedService<ShutdownCoordinator>();
        return services;
    }

    /// <summary>Maps the WebSocket endpoints and health.</summary>
    public static void MapBroker(WebApplication app)
    {
        var handler = app.Services.GetRequiredService<StompConnectionHandler>();
        app.Map("/ws", handler.HandleStompAsync);
        app.Map("/ws/topic/{**path}", (HttpContext context, string path) => handler.HandleRawAsync(context, "/topic/", path));
        app.Map("/ws/queue/{**path}", (HttpContext context, string path) => handler.HandleRawAsync(context, "/queue/", path));
        app.MapGet("/healthz", () => Results.Ok(new { status = "alive" }));
    }

    private sealed class Validator<T>(Func<T, IEnumerable<string>> validate) : IValidateOptions<T> where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var failures = validate(options).ToList();
            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }
}
