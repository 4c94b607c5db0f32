using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace WsBroker.Bench;

/// <summary>An <see cref="IMeterFactory"/> as the host has one (meters created through it, disposed with it).</summary>
internal static class BenchMeterFactory
{
    public static IMeterFactory Create() =>
        new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
}
