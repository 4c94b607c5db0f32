namespace WsBroker.Broker.Hosting;

/// <summary>The configuration cannot work: each failure names the setting (<c>Urls: …</c>, <c>Cluster:Enabled is not a
/// known setting</c>). Thrown before the host is built; Program.cs prints one line per failure and exits 2.</summary>
public sealed class BrokerConfigurationException : Exception
{
    public BrokerConfigurationException(IReadOnlyList<string> failures)
        : base(string.Join("; ", failures)) => Failures = failures;

    public BrokerConfigurationException()
        : this([]) { }

    public BrokerConfigurationException(string message)
        : this([message]) { }

    public BrokerConfigurationException(string message, Exception innerException)
        : base(message, innerException) => Failures = [message];

    public IReadOnlyList<string> Failures { get; }
}
