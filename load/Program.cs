using System.Diagnostics;
using Spectre.Console;
using WsBroker.Load;

LoadOptions? options;
try
{
    options = LoadOptions.Parse(args);
}
catch (LoadUsageException ex)
{
    Console.Error.WriteLine($"wsbroker-load: {ex.Message} (try --help)");
    return 2;
}
if (options is null)
{
    Console.WriteLine(LoadOptions.Usage);
    return 0;
}

if (options.ChildOffset is not null)
{
    // A child of idle --processes: it talks to its parent over stdin and stdout (load/ChildProcesses.cs), and reports nothing else.
    try
    {
        return await ChildProcess.RunChildAsync(options, Console.OpenStandardInput(), Console.Out);
    }
    catch (Exception ex) when (ex is InvalidOperationException or HttpRequestException or OperationCanceledException)
    {
        Console.Error.WriteLine($"wsbroker-load: child: {ex.Message}");
        return 1;
    }
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
var stats = new RunStats();
var cpu = Process.GetCurrentProcess().TotalProcessorTime;
var wall = Stopwatch.StartNew();
try
{
    var run = Scenarios.RunAsync(options, stats, cancel.Token);
    if (options.Progress && !Console.IsErrorRedirected)
    {
        // Progress goes to stderr: stdout carries only the JSON line.
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        await console.Progress().AutoClear(true).StartAsync(async ctx =>
        {
            var task = ctx.AddTask($"{options.Scenario}", maxValue: (options.Warmup + options.Duration).TotalSeconds);
            while (!run.IsCompleted)
            {
                task.Value = Math.Min(task.MaxValue, wall.Elapsed.TotalSeconds);
                task.Description = $"{options.Scenario}: sent {stats.Sent:N0}, delivered {stats.Received:N0}";
                await Task.WhenAny(run, Task.Delay(250));
            }
        });
    }
    var result = await run;
    var usedCpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
    var extra = new Dictionary<string, double>(result.Extra) { ["load_cpu_cores"] = Math.Round(usedCpu / Math.Max(wall.Elapsed.TotalSeconds, 0.001), 2) };
    result = result with { Extra = extra };
    Console.WriteLine(Report.JsonLine(result));
    if (options.Out is not null)
    {
        foreach (var file in Report.Write(options.Out, result)) Console.Error.WriteLine($"wrote {file}");
    }
    Console.Error.WriteLine(Report.MarkdownHeader);
    Console.Error.WriteLine(Report.MarkdownRow(result));
    // failover is a check as well as a measurement: a message lost or doubled across the kill fails the run.
    if (result.Scenario == "failover" && (result.Lost > 0 || result.Extra.GetValueOrDefault("duplicated") > 0))
    {
        Console.Error.WriteLine($"wsbroker-load: failover lost {result.Lost} and duplicated {result.Extra["duplicated"]} messages");
        return 1;
    }
    return 0;
}
catch (Exception ex) when (ex is InvalidOperationException or System.Net.WebSockets.WebSocketException or HttpRequestException or OperationCanceledException or InvalidDataException)
{
    Console.Error.WriteLine($"wsbroker-load: {options.Scenario} failed: {ex.Message}");
    return 1;
}
