using System.Security.Cryptography;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using WsBroker.Broker.Access;
using WsBroker.Broker.Api;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Chat;
using WsBroker.Broker.Cluster;
using WsBroker.Broker.Diagnostics;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Hosting;
using WsBroker.Broker.Operations;
using WsBroker.Broker.Options;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;
using WsBroker.Persistence;
using WsBroker.UserSync;

namespace WsBroker.Broker;

/// <summary>Builds the broker host: the one factory Program.cs and the tests use.</summary>
public static class BrokerApp
{
    /// <summary>Where the broker listens when nothing is configured.</summary>
    public const string DefaultUrl = "http://localhost:8080";

    // A readiness check that has not answered by then counts as down.
    private static readonly TimeSpan ReadinessTimeout = TimeSpan.FromSeconds(3);

    /// <summary>Creates the application. <paramref name="configure"/> may add or replace services before it is built (it runs
    /// after the broker registered its own, so a service it adds in place of one of them is the one resolved).</summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddEnvironmentVariables("WSBROKER_");
        builder.WebHost.UseKestrel(k => k.AddServerHeader = false);
        // Kestrel logs each connection it closes past its limit; ConnectionRefusals logs them at most once per interval.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel.Connections", LogLevel.Error);
        // Kestrel opens a logging scope for every connection and it lives as long as the connection (a scope object and an
        // execution context of its own: about 150 bytes of every idle connection, docs/performance.md). Nothing prints
        // scopes unless the console is told to, so they are captured only then.
        builder.Services.Configure<LoggerFilterOptions>(o => o.CaptureScopes = builder.Configuration.GetValue("Logging:Console:FormatterOptions:IncludeScopes", false));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
        // The default listen address, unless --urls, Urls / WSBROKER_Urls, ASPNETCORE_URLS or ASPNETCORE_HTTP_PORTS
        // (the .NET container images set it) says otherwise. Not in appsettings.json: a file value would beat
        // ASPNETCORE_URLS, which the container image and docker-compose.yml use.
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["http_ports"])
            && string.IsNullOrEmpty(builder.Configuration["https_ports"]))
            builder.WebHost.UseUrls(DefaultUrl);
        var mode = BrokerMode.From(builder.Configuration);
        var generatedKey = false;
        if (mode.IsEmbedded && string.IsNullOrEmpty(builder.Configuration["Auth:SigningKey"]) && string.IsNullOrEmpty(builder.Configuration["Auth:PublicKeyPath"]))
        {
            // Embedded mode works with one command: a per-process key signs the dev tokens. Production must configure one.
            builder.Configuration["Auth:SigningKey"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(48));
            generatedKey = true;
        }
        builder.Services.AddSingleton(mode);
        ClusterSetup.PrepareConfiguration(builder.Configuration);
        AddBroker(builder.Services, builder.Configuration);
        AddChat(builder.Services, builder.Configuration);
        ClusterSetup.AddCluster(builder.Services, builder.Configuration);
        configure?.Invoke(builder);                               // after the broker's own: a single service it adds wins
        // Before the host is built: a mistake in the configuration is one typed error that names the setting.
        StartupValidation.Validate(builder.Configuration, builder.Services
            .Where(d => d.ServiceType == typeof(OptionsSection)).Select(d => (OptionsSection)d.ImplementationInstance!));
        ClusterSetup.Validate(builder.Configuration);

        var app = builder.Build();
        if (generatedKey)
            app.Logger.LogWarning("embedded mode: no Auth:SigningKey configured, using a random key for this process (tokens die with it)");
        UseWebPages(app);
        MapBroker(app);
        ChatApi.Map(app);
        return app;
    }

    /// <summary>Registers storage, user sync and the support chat rules on top of the engine, with their readiness checks
    /// (<c>database</c>, <c>bus</c>) and the store's metrics.</summary>
    public static IServiceCollection AddChat(IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton(new OptionsSection(ChatOptions.Section, typeof(ChatOptions)));
        services.AddSingleton(new OptionsSection("Storage", typeof(PersistenceOptions)));
        services.AddSingleton(new OptionsSection(UserSyncOptions.Section, typeof(UserSyncOptions)));
        services.AddOptions<ChatOptions>().Bind(configuration.GetSection(ChatOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ChatOptions>>(new OptionsValidator<ChatOptions>(o => o.Validate()));
        services.AddWsBrokerPersistence(configuration);
        services.AddWsBrokerUserSync(configuration);
        services.AddSingleton<IAccessPolicy, ChatAccessPolicy>();
        services.AddSingleton<ISendHandler, ChatSendHandler>();
        services.AddSingleton<LocalChatAppender>();
        if (ClusterSetup.IsEnabled(configuration))
        {
            // Before ClusterSetup's hosted services: its constructor makes this node a candidate owner of the shards.
            services.AddSingleton<ClusterChatAppender>();
            services.AddSingleton<IChatAppender>(sp => sp.GetRequiredService<ClusterChatAppender>());
            services.AddHostedService(sp => sp.GetRequiredService<ClusterChatAppender>());
        }
        else services.AddSingleton<IChatAppender>(sp => sp.GetRequiredService<LocalChatAppender>());
        services.AddSingleton<IReplaySource, ChatReplaySource>();
        services.AddSingleton<ChatDeliveryTracker>();
        services.AddSingleton<IDeliveryObserver>(sp => sp.GetRequiredService<ChatDeliveryTracker>());
        services.AddHostedService(sp => sp.GetRequiredService<ChatDeliveryTracker>());
        services.AddHostedService<ChatLifecycle>();
        services.TryAddSingleton<InboxLoader>();                       // a test may slow it down
        services.AddSingleton<InboxFeed>();
        services.AddSingleton<ISubscriptionHandler>(sp => sp.GetRequiredService<InboxFeed>());
        services.AddHostedService(sp => sp.GetRequiredService<InboxFeed>());
        services.AddHealthChecks()
            .AddCheck<StorageHealthCheck>("database", HealthStatus.Unhealthy, [OperationsEndpoints.ReadyTag], ReadinessTimeout)
            .AddCheck<BusHealthCheck>("bus", HealthStatus.Unhealthy, [OperationsEndpoints.ReadyTag], ReadinessTimeout);
        // MassTransit registers its own "masstransit-bus" check tagged "ready"; the "bus" check above answers the same
        // question under the name /readyz has always used.
        services.PostConfigure<HealthCheckServiceOptions>(o =>
        {
            foreach (var check in o.Registrations.Where(r => r.Name == "masstransit-bus").ToList()) o.Registrations.Remove(check);
        });
        services.AddHostedService<PersistenceMetrics>();
        return services;
    }

    /// <summary>Serves web-js at <c>/</c> when the folder is found (next to the binary, or in the source tree).</summary>
    private static void UseWebPages(WebApplication app)
    {
        var root = app.Services.GetRequiredService<IOptions<ChatOptions>>().Value.WebRoot ?? FindWebRoot();
        if (root is null)
        {
            app.MapGet("/", () => Results.Text("WsBroker is running. The web pages (web-js/) were not found next to the binary.", "text/plain"));
            return;
        }
        var files = new PhysicalFileProvider(Path.GetFullPath(root));
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            OnPrepareResponse = ctx => ctx.Context.Response.Headers.CacheControl = "no-cache",
        });
    }

    private static string? FindWebRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "web-js");
                if (File.Exists(Path.Combine(candidate, "index.html"))) return candidate;
            }
        }
        return null;
    }

    /// <summary>Registers the engine: options (validated at start), router, sessions, JWT, default policy.</summary>
    public static IServiceCollection AddBroker(IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton(new OptionsSection(BrokerOptions.Section, typeof(BrokerOptions)));
        services.AddSingleton(new OptionsSection(AuthOptions.Section, typeof(AuthOptions)));
        services.AddSingleton(new OptionsSection(AclOptions.Section, typeof(AclOptions)));
        services.AddOptions<BrokerOptions>().Bind(configuration.GetSection(BrokerOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<BrokerOptions>>(new OptionsValidator<BrokerOptions>(o => o.Validate()));
        services.AddOptions<AuthOptions>().Bind(configuration.GetSection(AuthOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuthOptions>>(new OptionsValidator<AuthOptions>(o => o.Validate()));
        services.AddOptions<AclOptions>().Bind(configuration.GetSection(AclOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AclOptions>>(new OptionsValidator<AclOptions>(o => o.Validate()));
        services.AddSingleton<TopicAcl>();
        services.AddSingleton<TopicRouter>();
        services.AddSingleton<LocalDelivery>();
        services.AddSingleton<IBackplane, InProcessBackplane>();
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<BrokerOptions>>().Value is var o && o.ClockOffsetMs != 0
            ? new MessageIdGenerator(o.NodeId, new OffsetClock(TimeSpan.FromMilliseconds(o.ClockOffsetMs)))
            : new MessageIdGenerator(o.NodeId));
        services.AddSingleton<SessionRegistry>();
        services.AddSingleton<IPresence, LocalPresence>();
        services.AddMetrics();
        services.AddSingleton<BrokerMetrics>();
        services.AddHostedService<SessionGauges>();
        services.AddHealthChecks();
        services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(BrokerMetrics.MeterName).AddPrometheusExporter(o =>
        {
            o.ScrapeResponseCacheDurationMilliseconds = 0;     // a scrape sees what happened before it
            o.ScopeInfoEnabled = false;                        // one meter: no otel_scope_name label on every series
            o.TargetInfoEnabled = false;
        }));
        services.AddSingleton<JwtValidator>();
        services.AddSingleton<JwtIssuer>();
        services.AddSingleton<BrokerServices>();
        services.AddSingleton<WebSocketAdmission>();
        services.AddSingleton<WebSocketEndpoint>();
        services.AddOptions<SocketTransportOptions>().Configure<IOptions<BrokerOptions>>((s, o) => s.UnsafePreferInlineScheduling = o.Value.InlineScheduling);
        services.TryAddSingleton(sp => ConnectionLimits.Compute(sp.GetRequiredService<IOptions<BrokerOptions>>().Value,
            sp.GetRequiredService<ILogger<ConnectionLimits>>()));                  // a test may set the shares
        services.AddOptions<KestrelServerOptions>().Configure<ConnectionLimits, IOptions<BrokerOptions>>((k, limits, o) => limits.ApplyTo(k, o.Value));
        services.AddSingleton<ConnectionRefusals>();
        services.AddHostedService(sp => sp.GetRequiredService<ConnectionRefusals>());
        services.AddSingleton<PipelineWebSocketEndpoint>();
        // Broker:Transport=Pipeline: WebSocket upgrades are taken on Kestrel's connection layer, on every listen address.
        services.Configure<KestrelServerOptions>(k => k.ConfigureEndpointDefaults(PipelineWebSocketEndpoint.Use));
        services.TryAddSingleton<IAccessPolicy, AclPolicy>();
        services.AddHostedService<HeartBeatScanner>();
        services.AddHostedService<BackplaneGap>();
        services.AddHostedService<ShutdownCoordinator>();
        return services;
    }

    /// <summary>Maps the WebSocket endpoints (with the WebSocket middleware they need), health, readiness and metrics. With
    /// <c>Broker:Transport=Pipeline</c> they still serve the upgrades the connection layer leaves to them.</summary>
    public static void MapBroker(WebApplication app)
    {
        app.Use(TimedUpgradeFeature.Install);                    // ahead of the WebSocket middleware, which takes the feature
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        // Resolved from the root provider on first use (not per request: a request scope would live as long as the socket).
        var endpoint = new Lazy<WebSocketEndpoint>(() => app.Services.GetRequiredService<WebSocketEndpoint>());
        app.Map("/ws", (HttpContext context) => endpoint.Value.HandleStompAsync(context));
        app.Map("/ws/topic/{**path}", (HttpContext context, string path) => endpoint.Value.HandleRawAsync(context, path));
        OperationsEndpoints.Map(app);
    }
}
