using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using WsBroker.UserSync.Contracts;

namespace WsBroker.UserSync;

/// <summary>Which transport carries the user events.</summary>
public enum BusTransport
{
    InMemory,
    RabbitMq,
}

/// <summary>Section <c>Bus</c>: the transport and the consumer endpoint.</summary>
public sealed class UserSyncOptions
{
    public const string Section = "Bus";

    public BusTransport Transport { get; set; } = BusTransport.InMemory;
    public string Host { get; set; } = "localhost";
    public int Port { get; set; } = 5672;
    public string VirtualHost { get; set; } = "/";
    public string Username { get; set; } = "guest";
    public string Password { get; set; } = "guest";
    /// <summary>The durable queue the consumers read (its poison messages go to <c>{QueueName}_error</c>).</summary>
    public string QueueName { get; set; } = "wsbroker-users";
    /// <summary>RabbitMQ deletes the queue after this long without a consumer (0: never). A cluster node's own queue
    /// (<c>{QueueName}.node-{NodeId}</c>) gets a day, so a retired node id leaves nothing behind.</summary>
    public int QueueExpiresMs { get; set; }
    public int PrefetchCount { get; set; } = 16;
    public int ConcurrentMessageLimit { get; set; } = 8;

    public IEnumerable<string> Validate()
    {
        if (!Enum.IsDefined(Transport)) yield return "Bus:Transport must be InMemory or RabbitMq";
        if (Transport == BusTransport.RabbitMq && string.IsNullOrWhiteSpace(Host)) yield return "Bus:Host must be set when Bus:Transport is RabbitMq";
        if (Port is < 1 or > 65535) yield return "Bus:Port must be between 1 and 65535";
        if (string.IsNullOrWhiteSpace(QueueName)) yield return "Bus:QueueName must not be empty";
        if (PrefetchCount is < 1 or > 10000) yield return "Bus:PrefetchCount must be between 1 and 10000";
        if (ConcurrentMessageLimit is < 1 or > 1000) yield return "Bus:ConcurrentMessageLimit must be between 1 and 1000";
        if (QueueExpiresMs < 0) yield return "Bus:QueueExpiresMs must not be negative";
    }
}

/// <summary>Publishes the user events (embedded mode seeds its demo users through this, like the user service would).</summary>
public interface IUserEventPublisher
{
    Task PublishAsync<T>(T message, CancellationToken cancellationToken = default) where T : class;

    /// <summary>Waits (at most <paramref name="timeout"/>) until the bus and this process's consumer endpoint are up, so
    /// that an event published now also reaches this process; false if they were not by then.</summary>
    Task<bool> WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken = default);
}

internal sealed class UserEventPublisher(IPublishEndpoint publish, IBusControl bus) : IUserEventPublisher
{
    public Task PublishAsync<T>(T message, CancellationToken cancellationToken = default) where T : class => publish.Publish(message, cancellationToken);

    public async Task<bool> WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        await bus.WaitForHealthStatus(BusHealthStatus.Healthy, timeout).WaitAsync(cancellationToken).ConfigureAwait(false) == BusHealthStatus.Healthy;
}

public static class UserSyncServiceCollectionExtensions
{
    /// <summary>Registers MassTransit with the configured transport and the user consumers on one receive endpoint.
    /// Needs an <see cref="WsBroker.Persistence.IUserStore"/> in the container.</summary>
    public static IServiceCollection AddWsBrokerUserSync(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(UserSyncOptions.Section);
        var options = new UserSyncOptions();
        var transport = section["Transport"];
        if (!string.IsNullOrEmpty(transport) && !Enum.TryParse<BusTransport>(transport, true, out _))
            throw new OptionsValidationException(UserSyncOptions.Section, typeof(UserSyncOptions), [$"Bus:Transport must be InMemory or RabbitMq, not '{transport}'"]);
        section.Bind(options, b => b.ErrorOnUnknownConfiguration = false);
        var problems = options.Validate().ToList();
        if (problems.Count > 0) throw new OptionsValidationException(UserSyncOptions.Section, typeof(UserSyncOptions), problems);
        services.AddSingleton(Options.Create(options));
        services.AddSingleton<UserEvents>();
        services.AddSingleton<IUserEvents>(sp => sp.GetRequiredService<UserEvents>());
        services.AddSingleton<IUserEventPublisher, UserEventPublisher>();
        services.AddMassTransit(x =>
        {
            x.AddConsumer<UserCreatedConsumer>();
            x.AddConsumer<UserUpdatedConsumer>();
            x.AddConsumer<UserDeletedConsumer>();
            if (options.Transport == BusTransport.RabbitMq)
            {
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(options.Host, (ushort)options.Port, options.VirtualHost, h =>
                    {
                        h.Username(options.Username);
                        h.Password(options.Password);
                    });
                    cfg.ReceiveEndpoint(options.QueueName, e =>
                    {
                        e.PrefetchCount = options.PrefetchCount;
                        if (options.QueueExpiresMs > 0) e.SetQueueArgument("x-expires", options.QueueExpiresMs);
                        Configure(e, context, options);
                    });
                });
            }
            else
            {
                x.UsingInMemory((context, cfg) => cfg.ReceiveEndpoint(options.QueueName, e => Configure(e, context, options)));
            }
        });
        return services;
    }

    /// <summary>How long a user event is retried while the database is unreachable (sum ≈ 6 minutes).</summary>
    internal static readonly int[] RetryIntervalsMs = [100, 500, 1000, 2000, 5000, 10_000, 30_000, 30_000, 60_000, 60_000, 60_000, 60_000, 60_000];

    private static void Configure(IReceiveEndpointConfigurator endpoint, IBusRegistrationContext context, UserSyncOptions options)
    {
        endpoint.ConcurrentMessageLimit = options.ConcurrentMessageLimit;
        // A database outage is waited out: each event is retried for about six minutes (the message stays unacknowledged
        // in RabbitMQ meanwhile, so a restart loses nothing) before it goes to the error queue. An event that can never be
        // applied goes there at once.
        endpoint.UseMessageRetry(r =>
        {
            r.Intervals(RetryIntervalsMs);
            r.Ignore<InvalidUserEventException>();
        });
        endpoint.ConfigureConsumer<UserCreatedConsumer>(context);
        endpoint.ConfigureConsumer<UserUpdatedConsumer>(context);
        endpoint.ConfigureConsumer<UserDeletedConsumer>(context);
    }
}
