using Dapper;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace WsBroker.Persistence;

/// <summary>The stores of one database, migrated and ready. Disposing commits what is queued and stops the writer.</summary>
public sealed class PersistenceStores : IAsyncDisposable
{
    private readonly SqlDialect _dialect;
    private readonly MessageStore _messages;

    internal PersistenceStores(SqlDialect dialect, UserStore users, MessageStore messages)
    {
        _dialect = dialect;
        Users = users;
        _messages = messages;
    }

    public IUserStore Users { get; }
    public IMessageStore Messages => _messages;
    public StorageProvider Provider => _dialect.Provider;

    /// <summary>Raised after every group commit with the batch size and its duration.</summary>
    public event Action<int, TimeSpan>? Committed
    {
        add => _messages.Committed += value;
        remove => _messages.Committed -= value;
    }

    /// <summary>Readiness: true when a trivial query answers.</summary>
    public async Task<bool> PingAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = _dialect.CreateConnection();
            await connection.OpenAsync(cancellationToken);
            return await connection.ExecuteScalarAsync<int>(new CommandDefinition("SELECT 1", cancellationToken: cancellationToken)) == 1;
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException || _dialect.IsTransient(ex) || ex is OperationCanceledException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync() => _messages.DisposeAsync();
}

/// <summary>Creates migrated stores without DI (tools, tests, benchmarks).</summary>
public static class StoreFactory
{
    public static async Task<PersistenceStores> CreateAsync(PersistenceOptions options, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = PersistenceOptionsValidator.Problems(options).ToList();
        if (problems.Count > 0) throw new OptionsValidationException("Storage", typeof(PersistenceOptions), problems);
        var dialect = SqlDialect.Create(options);
        await Migrator.MigrateAsync(dialect, cancellationToken);
        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("WsBroker.Persistence");
        var users = new UserStore(dialect);
        return new PersistenceStores(dialect, users, new MessageStore(dialect, options, users, logger));
    }
}

internal sealed class PersistenceOptionsValidator : IValidateOptions<PersistenceOptions>
{
    public ValidateOptionsResult Validate(string? name, PersistenceOptions options)
    {
        var problems = Problems(options).ToList();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    public static IEnumerable<string> Problems(PersistenceOptions o)
    {
        if (!Enum.IsDefined(o.Provider)) yield return "Storage:Provider must be Sqlite or MySql";
        if (string.IsNullOrWhiteSpace(o.ConnectionString))
            yield return o.Provider == StorageProvider.MySql ? "ConnectionStrings:MySql must be set when Storage:Provider is MySql" : "ConnectionStrings:Sqlite must not be empty";
        if (o.BatchSize is < 1 or > 1000) yield return "Storage:BatchSize must be between 1 and 1000";
        if (o.BatchDelayMs is < 0 or > 1000) yield return "Storage:BatchDelayMs must be between 0 and 1000";
        if (o.QueueCapacity < 1) yield return "Storage:QueueCapacity must be at least 1";
        if (o.WriteTimeoutMs < 1) yield return "Storage:WriteTimeoutMs must be at least 1";
        if (o.MaxBodyBytes < 1) yield return "Storage:MaxBodyBytes must be at least 1";
    }
}

/// <summary>DI registration: binds <c>Storage</c> and <c>ConnectionStrings</c>, migrates at start-up.</summary>
public static class PersistenceServiceCollectionExtensions
{
    public static IServiceCollection AddWsBrokerPersistence(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PersistenceOptions>()
            .Configure(o =>
            {
                var section = configuration.GetSection("Storage");
                var provider = section["Provider"];
                if (!string.IsNullOrEmpty(provider))
                    o.Provider = Enum.TryParse<StorageProvider>(provider, ignoreCase: true, out var p) ? p : (StorageProvider)(-1);
                section.Bind(o, b => b.ErrorOnUnknownConfiguration = false);
                if (!string.IsNullOrEmpty(provider) && o.Provider == (StorageProvider)(-1)) return;
                var cs = configuration.GetConnectionString(o.Provider == StorageProvider.MySql ? "MySql" : "Sqlite");
                o.ConnectionString = cs ?? (o.Provider == StorageProvider.MySql ? "" : o.ConnectionString);
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<PersistenceOptions>, PersistenceOptionsValidator>();
        // Opened (and migrated) on first use: every component that needs a store gets it migrated and ready.
        services.AddSingleton(sp => StoreFactory.CreateAsync(sp.GetRequiredService<IOptions<PersistenceOptions>>().Value,
            sp.GetRequiredService<ILoggerFactory>()).GetAwaiter().GetResult());
        services.AddHostedService<PersistenceHost>();
        services.AddSingleton(sp => sp.GetRequiredService<PersistenceStores>().Users);
        services.AddSingleton(sp => sp.GetRequiredService<PersistenceStores>().Messages);
        return services;
    }
}

/// <summary>Opens the stores when the host starts (before Kestrel listens) and flushes the write-behind queue when it has stopped.</summary>
internal sealed class PersistenceHost(IServiceProvider services) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        _ = services.GetRequiredService<PersistenceStores>();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken) =>
        await services.GetRequiredService<PersistenceStores>().DisposeAsync();
}
