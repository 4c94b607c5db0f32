using System.Globalization;
using System.Text;
using System.Text.Json;
using ScottPlot;

namespace WsBroker.Load;

/// <summary>The outputs of a run: one JSON line, a Markdown table row, and PNG plots.</summary>
public static class Report
{
    private static readonly JsonSerializerOptions s_json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string JsonLine(ScenarioResult r) => JsonSerializer.Serialize(r with { Timeline = [] }, s_json);

    public const string MarkdownHeader = "| broker | scenario | connections | seconds | sent | delivered | per second | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | lost | notes |\n"
        + "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

    public static string MarkdownRow(ScenarioResult r)
    {
        string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        var notes = string.Join(", ", r.Extra.Select(e => $"{e.Key}={F(e.Value)}"));
        return $"| {r.Label} | {r.Scenario} | {r.Connections} | {F(r.Seconds)} | {r.Sent} | {r.Received} | {r.PerSecond:N0} | {F(r.P50Ms)} | {F(r.P90Ms)} | {F(r.P99Ms)} | {F(r.P999Ms)} | {F(r.MaxMs)} | {r.Lost} | {notes} |";
    }

    /// <summary>Appends the row to &lt;out&gt;/report.md (with the header when new), writes &lt;label&gt;-&lt;scenario&gt;.json and the plots.</summary>
    public static IReadOnlyList<string> Write(string folder, ScenarioResult r)
    {
        Directory.CreateDirectory(folder);
        var files = new List<string>();
        var report = Path.Combine(folder, "report.md");
        var row = new StringBuilder();
        if (!File.Exists(report)) row.AppendLine(MarkdownHeader);
        row.AppendLine(MarkdownRow(r));
        File.AppendAllText(report, row.ToString());
        files.Add(report);
        var stem = Path.Combine(folder, $"{Slug(r.Label)}-{r.Scenario}");
        File.WriteAllText(stem + ".json", JsonSerializer.Serialize(r, s_json));
        files.Add(stem + ".json");
        if (r.Received > 0 && r.Scenario != "idle")
        {
            var latency = new Plot();
            string[] labels = ["p50", "p90", "p99", "p99.9", "max"];
            double[] values = [r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms, r.MaxMs];
            var bars = latency.Add.Bars(values);
            latency.Axes.Bottom.SetTicks([0, 1, 2, 3, 4], labels);
            latency.Axes.Left.Label.Text = "latency (ms)";
            latency.Title($"{r.Label} — {r.Scenario}: latency percentiles");
            latency.SavePng(stem + "-latency.png", 640, 400);
            files.Add(stem + "-latency.png");
            _ = bars;

            var throughput = new Plot();
            var xs = Enumerable.Range(1, r.Timeline.Length).Select(i => (double)i).ToArray();
            throughput.Add.Scatter(xs, r.Timeline.Select(v => (double)v).ToArray());
            throughput.Axes.Bottom.Label.Text = "second";
            throughput.Axes.Left.Label.Text = "delivered per second";
            throughput.Title($"{r.Label} — {r.Scenario}: throughput over time");
            throughput.SavePng(stem + "-throughput.png", 640, 400);
            files.Add(stem + "-throughput.png");
        }
        return files;
    }

    private static string Slug(string text)
    {
        var slug = new string(text.Select(c => char.IsLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-').ToArray()).Trim('-');
        while (slug.Contains("--", StringComparison.Ordinal)) slug = slug.Replace("--", "-", StringComparison.Ordinal);
        return slug.Length == 0 ? "broker" : slug;
    }
}
