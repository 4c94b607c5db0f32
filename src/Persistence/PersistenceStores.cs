using Dapper;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace WsBroker.Persistence;

/// <summary>The stores of one database. Usable once opened (the schema migrated): by <see cref="StoreFactory.CreateAsync"/>,
/// or in a host by the persistence hosted service before the application takes traffic; before that every store call
/// throws <see cref="InvalidOperationException"/>. Disposing commits what is queued and stops the writer.</summary>
public sealed class PersistenceStores : IAsyncDisposable
{
    private readonly SqlDialect _dialect;
    private readonly StoreGate _gate = new();
    private readonly MessageStore _messages;

    internal PersistenceStores(PersistenceOptions options, ILoggerFactory loggerFactory)
    {
        _dialect = SqlDialect.Create(options);
        Users = new UserStore(_dialect, _gate);
        _messages = new MessageStore(_dialect, options, _gate, loggerFactory.CreateLogger("WsBroker.Persistence"));
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

    /// <summary>Applies the migrations, then lets the stores work.</summary>
    internal async Task OpenAsync(CancellationToken cancellationToken)
    {
        await Migrator.MigrateAsync(_dialect, cancellationToken);
        _gate.Open();
    }

    /// <summary>Readiness: true when the stores are open and a trivial query answers.</summary>
    public async Task<bool> PingAsync(CancellationToken cancellationToken = default)
    {
        if (!_gate.IsOpen) return false;
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
        var stores = new PersistenceStores(options, loggerFactory ?? NullLoggerFactory.Instance);
        try
        {
            await stores.OpenAsync(cancellationToken);
            return stores;
        }
        catch
        {
            await stores.DisposeAsync();
            throw;
        }
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

/// <summary>DI registration: binds <c>Storage</c> and <c>ConnectionStrings</c>; the stores are singletons that a hosted
/// service opens (migrates) when the host starts, before any other hosted service starts (Kestrel, the bus).</summary>
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
        // Built without I/O; PersistenceHost opens them asynchronously at start-up.
        services.AddSingleton(sp => new PersistenceStores(sp.GetRequiredService<IOptions<PersistenceOptions>>().Value,
            sp.GetRequiredService<ILoggerFactory>()));
        services.AddHostedService<PersistenceHost>();
        services.AddSingleton(sp => sp.GetRequiredService<PersistenceStores>().Users);
        services.AddSingleton(sp => sp.GetRequiredService<PersistenceStores>().Messages);
        return services;
    }
}

/// <summary>Opens the stores (runs the migrations) while the host is starting, before any hosted service's
/// <c>StartAsync</c> (so before Kestrel listens and before the bus consumes), and flushes the write-behind queue when the
/// host has stopped.</summary>
internal sealed class PersistenceHost(PersistenceStores stores) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => stores.OpenAsync(cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken) => await stores.DisposeAsync();
}
