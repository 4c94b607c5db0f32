namespace WsBroker.UserSync;

internal static class Program
{
    private static Task<int> Main(string[] args) => PublisherCommand.RunAsync(args, Console.Out, Console.Error);
}
