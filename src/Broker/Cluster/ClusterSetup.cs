using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Hosting;
using WsBroker.Broker.Operations;
using WsBroker.Broker.Routing;
using WsBroker.Broker.Sessions;

namespace WsBroker.Broker.Cluster;

/// <summary>Cluster mode (<c>Cluster:Enabled=true</c>): the RabbitMQ backplane instead of the in-process one, this node's
/// own queue for the user events, and the <c>backplane</c> readiness check.</summary>
public static class ClusterSetup
{
    /// <summary>Day-long expiry of a node's own user-event queue: a retired node id leaves nothing behind.</summary>
    private const int NodeQueueExpiresMs = 24 * 60 * 60 * 1000;

    public static bool IsEnabled(IConfiguration configuration) =>
        bool.TryParse(configuration[$"{ClusterOptions.Section}:Enabled"], out var enabled) && enabled;

    /// <summary>Before the chat is registered: in cluster mode every node reads the user events from a queue of its own
    /// (so each hears every event).</summary>
    public static void PrepareConfiguration(IConfiguration configuration)
    {
        if (!IsEnabled(configuration)) return;
        var node = configuration["Broker:NodeId"] ?? "0";
        configuration["Bus:QueueName"] = $"{configuration["Bus:QueueName"] ?? "wsbroker-users"}.node-{node}";
        configuration["Bus:QueueExpiresMs"] ??= NodeQueueExpiresMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>After the per-section checks: the combination of settings must hold a cluster.</summary>
    public static void Validate(IConfiguration configuration)
    {
        if (!IsEnabled(configuration)) return;
        var failures = new List<string>();
        if (!string.Equals(configuration["Bus:Transport"], "RabbitMq", StringComparison.OrdinalIgnoreCase))
            failures.Add("Cluster:Enabled needs Bus:Transport=RabbitMq (RabbitMQ is the backplane)");
        if (!string.Equals(configuration["Storage:Provider"], "MySql", StringComparison.OrdinalIgnoreCase))
            failures.Add("Cluster:Enabled needs Storage:Provider=MySql (the nodes share one database)");
        if (failures.Count > 0) throw new BrokerConfigurationException(failures);
    }

    public static IServiceCollection AddCluster(IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton(new OptionsSection(ClusterOptions.Section, typeof(ClusterOptions)));
        services.AddOptions<ClusterOptions>().Bind(configuration.GetSection(ClusterOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ClusterOptions>>(new OptionsValidator<ClusterOptions>(o => o.Validate()));
        if (!IsEnabled(configuration)) return services;
        services.AddSingleton<BackplaneMetrics>();
        services.AddSingleton<RabbitMqBackplane>();
        services.AddSingleton<IBackplane>(sp => sp.GetRequiredService<RabbitMqBackplane>());
        services.AddHostedService(sp => sp.GetRequiredService<RabbitMqBackplane>());
        services.AddSingleton<ShardRequests>();
        services.AddHostedService(sp => sp.GetRequiredService<ShardRequests>());
        services.AddSingleton<ClusterPresence>();
        services.AddSingleton<IPresence>(sp => sp.GetRequiredService<ClusterPresence>());
        services.AddHostedService(sp => sp.GetRequiredService<ClusterPresence>());
        services.AddHealthChecks().AddCheck<BackplaneHealthCheck>("backplane", HealthStatus.Unhealthy, [OperationsEndpoints.ReadyTag], TimeSpan.FromSeconds(3));
        return services;
    }
}

/// <summary>Readiness: the cluster backplane is connected (registered as <c>backplane</c> in cluster mode).</summary>
public sealed class BackplaneHealthCheck(RabbitMqBackplane backplane, ShardRequests requests) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(!backplane.IsConnected ? HealthCheckResult.Unhealthy("not connected to RabbitMQ: messages do not reach the other nodes")
            : !requests.IsReady ? HealthCheckResult.Unhealthy("the conversation shards are not set up yet")
            : HealthCheckResult.Healthy());
}
