using BenchmarkDotNet.Running;

namespace WsBroker.Bench;

public static class BenchProgram
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(BenchProgram).Assembly).Run(args);
}
