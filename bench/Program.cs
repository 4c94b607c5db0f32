using BenchmarkDotNet.Running;

namespace WsBroker.Bench;

/// <summary>
/// BenchmarkDotNet micro-benchmarks (<c>--filter '*Parser*'</c> …), plus the <c>appends</c> command that measures durable
/// appends per second on MariaDB (it needs a real server, so it is a command, not a micro-benchmark).
/// </summary>
public static class BenchProgram
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "appends") return await AppendCommand.RunAsync(args);
        BenchmarkSwitcher.FromAssembly(typeof(BenchProgram).Assembly).Run(args);
        return 0;
    }
}
