namespace WsBroker.Broker.Tests.Operations;

/// <summary>
/// Tests that assert exact metric values run alone: every broker in the test process has a meter named <c>WsBroker</c>,
/// and an exporter listens by meter name, so a broker started by a test running alongside would add to the counts.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "asserts exact metric values (runs alone)";
}
