namespace WsBroker.UserSync;

internal static class Program
{
    private static int Main(string[] args)
    {
        Console.Error.WriteLine("wsbroker-usersync: no commands yet");
        return args.Length == 0 ? 0 : 2;
    }
}
