using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace WsBroker.Persistence.Tests;

/// <summary><c>AddWsBrokerPersistence</c>: the stores resolve without I/O and open asynchronously when the host starts.</summary>
[Trait("Category", "Integration")]
public sealed class PersistenceHostTests
{
    [Fact]
    public async Task Stores_ResolvedBeforeTheHostStarts_RefuseWork_AndAreOpenOnceItStarted()
    {
        var (options, drop) = await TestDatabases.CreateAsync(StorageProvider.Sqlite);
        try
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Storage:Provider"] = "Sqlite",
                ["ConnectionStrings:Sqlite"] = options.ConnectionString,
            });
            builder.Services.AddWsBrokerPersistence(builder.Configuration);
            using var host = builder.Build();
            var users = host.Services.GetRequiredService<IUserStore>();
            var stores = host.Services.GetRequiredService<PersistenceStores>();
            Assert.Same(stores.Users, users);
            Assert.Same(stores.Messages, host.Services.GetRequiredService<IMessageStore>());
            var early = await Assert.ThrowsAsync<InvalidOperationException>(() => users.FindAsync("u1").AsTask());
            Assert.Contains("not open yet", early.Message, StringComparison.Ordinal);
            Assert.False(await stores.PingAsync());

            await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(await stores.PingAsync());
            await users.UpsertAsync("u1", "U", UserRole.Client, 1, DateTimeOffset.UtcNow);
            Assert.Equal(UserRole.Client, (await users.FindAsync("u1"))!.Role);
            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            await drop();
        }
    }
}
