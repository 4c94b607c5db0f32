using System.Globalization;

namespace WsBroker.Broker.Tests;

/// <summary>One scrape of <c>/metrics</c> (Prometheus text), by series: <c>name{label="value"}</c>. A series not
/// scraped reads as 0: a counter appears with its first event. The exporter writes a series without labels as
/// <c>name{}</c>, read here as <c>name</c>. The exporter listens to every meter named <c>WsBroker</c> in the process: with
/// brokers of other tests running alongside, a series can come once per broker, and reads as their sum (exact values
/// are asserted only in <see cref="Operations.MetricsCollection"/>, which runs alone).</summary>
public sealed class MetricsText
{
    private readonly Dictionary<string, double> _series;

    private MetricsText(Dictionary<string, double> series) => _series = series;

    public double this[string series] => _series.GetValueOrDefault(series);

    public bool Has(string series) => _series.ContainsKey(series);

    public static async Task<MetricsText> ScrapeAsync(HttpClient http) => Parse(await http.GetStringAsync(new Uri("/metrics", UriKind.Relative)));

    public static async Task<MetricsText> ScrapeAsync(Uri baseUri)
    {
        using var http = new HttpClient { BaseAddress = baseUri };
        return await ScrapeAsync(http);
    }

    /// <summary>Scrapes until <paramref name="series"/> reaches <paramref name="atLeast"/> (a counter the broker raises
    /// a moment after the event a test saw), failing with <paramref name="because"/> after <see cref="StompTestClient.Timeout"/>.</summary>
    public static async Task WaitForAsync(Uri baseUri, string series, double atLeast, string because)
    {
        var deadline = DateTime.UtcNow + StompTestClient.Timeout;
        while ((await ScrapeAsync(baseUri))[series] < atLeast)
        {
            Assert.True(DateTime.UtcNow < deadline, because);
            await Task.Delay(50);
        }
    }

    public static MetricsText Parse(string text) =>
        new(text.Split('\n').Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => (Series: l[..l.LastIndexOf(' ')].Replace("{}", "", StringComparison.Ordinal), Value: l[(l.LastIndexOf(' ') + 1)..]))
            .GroupBy(p => p.Series)
            .ToDictionary(g => g.Key, g => g.Sum(p => double.Parse(p.Value, CultureInfo.InvariantCulture))));
}
