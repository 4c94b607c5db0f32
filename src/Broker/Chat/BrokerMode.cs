namespace WsBroker.Broker.Chat;

/// <summary>Embedded (SQLite + in-memory bus) or production (anything else): decides the defaults of demo users and dev tokens.</summary>
public sealed record BrokerMode(bool IsEmbedded)
{
    public static BrokerMode From(IConfiguration configuration)
    {
        var storage = configuration["Storage:Provider"];
        var bus = configuration["Bus:Transport"];
        return new BrokerMode((string.IsNullOrEmpty(storage) || storage.Equals("Sqlite", StringComparison.OrdinalIgnoreCase))
            && (string.IsNullOrEmpty(bus) || bus.Equals("InMemory", StringComparison.OrdinalIgnoreCase)));
    }
}
