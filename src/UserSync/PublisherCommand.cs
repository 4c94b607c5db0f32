using System.Globalization;
using System.Text;
using MassTransit;
using WsBroker.Persistence;
using WsBroker.UserSync.Contracts;

namespace WsBroker.UserSync;

/// <summary>What the command line asked for.</summary>
internal sealed record PublishRequest(string Kind, IReadOnlyList<UserRow> Users, BusEndpoint Bus);

internal sealed record UserRow(string Id, string Name, string Role, long Version);

internal sealed record BusEndpoint(string Host, int Port, string VirtualHost, string Username, string Password);

/// <summary>Thrown for bad arguments or input: the message names what is wrong; exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message)
{
    public UsageException() : this("bad arguments") { }
    public UsageException(string message, Exception inner) : this(message + ": " + inner.Message) { }
}

/// <summary>
/// The user-service side: publishes UserCreated/UserUpdated/UserDeleted to RabbitMQ, one at a time or from a CSV file.
/// </summary>
internal static class PublisherCommand
{
    public const string Usage = """
        wsbroker-usersync: publish user events to RabbitMQ (the events WsBroker's user table follows)

        usage:
          dotnet run --project src/UserSync -- publish created --id <id> --name <name> --role admin|client [--version <n>] [bus options]
          dotnet run --project src/UserSync -- publish updated --id <id> --name <name> --role admin|client [--version <n>] [bus options]
          dotnet run --project src/UserSync -- publish deleted --id <id> [--version <n>] [bus options]
          dotnet run --project src/UserSync -- import <users.csv> [--event created|updated] [--skip-bad] [bus options]
          dotnet run --project src/UserSync -- --help

        --version   orders the events of one user: the highest wins (default: now in Unix milliseconds)
        users.csv   header "id,name,role" or "id,name,role,version"; fields may be quoted ("a, b"); every row is checked
                    first and nothing is published if a row is bad, unless --skip-bad (bad rows are reported and skipped)

        bus options (defaults from the env vars Bus__Host, Bus__Port, Bus__VirtualHost, Bus__Username, Bus__Password):
          --host <host> (localhost)  --port <port> (5672)  --vhost <vhost> (/)  --user <name> (guest)  --password <pw> (guest)

        exit codes: 0 published, 1 RabbitMQ unreachable or publish failed, 2 bad arguments or input
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, TimeSpan? timeout = null)
    {
        PublishRequest? request;
        try
        {
            request = Parse(args, stderr);
        }
        catch (UsageException ex)
        {
            await stderr.WriteLineAsync("wsbroker-usersync: " + ex.Message + " (try --help)");
            return 2;
        }
        if (request is null)
        {
            await stdout.WriteLineAsync(Usage);
            return 0;
        }
        if (request.Users.Count == 0)
        {
            await stderr.WriteLineAsync("wsbroker-usersync: nothing to publish");
            return 2;
        }
        IBusControl bus;
        try
        {
            bus = MassTransit.Bus.Factory.CreateUsingRabbitMq(cfg =>
                cfg.Host(request.Bus.Host, (ushort)request.Bus.Port, request.Bus.VirtualHost, h =>
                {
                    h.Username(request.Bus.Username);
                    h.Password(request.Bus.Password);
                    h.RequestedConnectionTimeout(TimeSpan.FromSeconds(5));
                }));
        }
        catch (Exception ex) when (ex is UriFormatException or ArgumentException or ConfigurationException)
        {
            await stderr.WriteLineAsync($"wsbroker-usersync: --host/--vhost: {ex.Message}");
            return 2;
        }
        // Each step has its own time limit (start, then every confirmed publish): a long import is not cut off halfway
        // by one budget for the whole file.
        var step = timeout ?? TimeSpan.FromSeconds(10);
        var published = 0;
        try
        {
            using (var start = new CancellationTokenSource(step)) await bus.StartAsync(start.Token);
            var now = DateTimeOffset.UtcNow;
            foreach (var user in request.Users)
            {
                using var cts = new CancellationTokenSource(step);
                // Publisher confirms: each Publish completes when RabbitMQ has taken the message.
                Task publish = request.Kind switch
                {
                    "created" => bus.Publish(new UserCreated(user.Id, user.Name, user.Role, user.Version, now), cts.Token),
                    "updated" => bus.Publish(new UserUpdated(user.Id, user.Name, user.Role, user.Version, now), cts.Token),
                    _ => bus.Publish(new UserDeleted(user.Id, user.Name, user.Role, user.Version, now), cts.Token),
                };
                await publish;
                published++;
            }
            await stdout.WriteLineAsync($"published {request.Users.Count} user {request.Kind} event(s) to {request.Bus.Host}:{request.Bus.Port}");
            return 0;
        }
        catch (Exception ex) when (ex is OperationCanceledException or MassTransitException or RabbitMqConnectionException
            or RabbitMQ.Client.Exceptions.RabbitMQClientException or RabbitMQ.Client.Exceptions.OperationInterruptedException or IOException)
        {
            await stderr.WriteLineAsync($"wsbroker-usersync: could not publish to RabbitMQ at {request.Bus.Host}:{request.Bus.Port}: "
                + $"{(ex is OperationCanceledException ? "no answer in time" : ex.Message)}; {published} of {request.Users.Count} event(s) were published"
                + (published > 0 ? " (publishing them again is harmless: the version decides)" : ""));
            return 1;
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try { await bus.StopAsync(stop.Token); } catch (Exception ex) when (ex is OperationCanceledException or MassTransitException) { }
        }
    }

    /// <summary>Parses the command line; null means "show help".</summary>
    public static PublishRequest? Parse(string[] args, TextWriter? warnings = null)
    {
        if (args.Length == 0 || args.Any(a => a is "-h" or "--help")) return null;
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        var positional = new List<string>();
        string[] valued = ["--id", "--name", "--role", "--version", "--host", "--port", "--vhost", "--user", "--password", "--event"];
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (valued.Contains(arg))
            {
                if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"{arg} needs a value");
                if (!options.TryAdd(arg, args[++i])) throw new UsageException($"{arg} given twice");
            }
            else if (arg == "--skip-bad") flags.Add(arg);
            else if (arg.StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"unknown option '{arg}'");
            else positional.Add(arg);
        }
        var bus = ParseBus(options);
        var command = positional.ElementAtOrDefault(0) ?? throw new UsageException("missing command: publish or import");
        switch (command)
        {
            case "publish":
            {
                var kind = positional.ElementAtOrDefault(1) ?? throw new UsageException("publish needs an event: created, updated or deleted");
                if (kind is not ("created" or "updated" or "deleted")) throw new UsageException($"unknown event '{kind}': use created, updated or deleted");
                if (positional.Count > 2) throw new UsageException($"unexpected argument '{positional[2]}'");
                Reject(options, flags, "--event", "--skip-bad");
                var id = options.GetValueOrDefault("--id") ?? throw new UsageException("--id is required");
                var role = options.GetValueOrDefault("--role");
                var name = options.GetValueOrDefault("--name");
                if (kind != "deleted")
                {
                    if (name is null) throw new UsageException("--name is required");
                    if (role is null) throw new UsageException("--role is required");
                }
                var version = options.TryGetValue("--version", out var v) ? ParseVersion(v, "--version") : DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                return new PublishRequest(kind, [Check(new UserRow(id, name ?? "", role ?? UserRoles.Client, version), "")], bus);
            }
            case "import":
            {
                var file = positional.ElementAtOrDefault(1) ?? throw new UsageException("import needs a CSV file");
                if (positional.Count > 2) throw new UsageException($"unexpected argument '{positional[2]}'");
                Reject(options, flags, "--id", "--name", "--role", "--version");
                var kind = options.GetValueOrDefault("--event") ?? "created";
                if (kind is not ("created" or "updated")) throw new UsageException($"--event must be created or updated, not '{kind}'");
                if (!File.Exists(file)) throw new UsageException($"file not found: {file}");
                return new PublishRequest(kind, ReadCsv(file, flags.Contains("--skip-bad"), warnings), bus);
            }
            default:
                throw new UsageException($"unknown command '{command}': use publish or import");
        }
    }

    private static void Reject(Dictionary<string, string> options, HashSet<string> flags, params string[] names)
    {
        foreach (var name in names)
        {
            if (options.ContainsKey(name) || flags.Contains(name)) throw new UsageException($"{name} does not apply to this command");
        }
    }

    private static BusEndpoint ParseBus(Dictionary<string, string> options)
    {
        string Get(string option, string env, string fallback) =>
            options.GetValueOrDefault(option) ?? Environment.GetEnvironmentVariable(env) ?? fallback;
        var portText = Get("--port", "Bus__Port", "5672");
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new UsageException($"--port must be a number between 1 and 65535, not '{portText}'");
        return new BusEndpoint(Get("--host", "Bus__Host", "localhost"), port, Get("--vhost", "Bus__VirtualHost", "/"),
            Get("--user", "Bus__Username", "guest"), Get("--password", "Bus__Password", "guest"));
    }

    private static long ParseVersion(string text, string where) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v
        : throw new UsageException($"{where}: version must be a positive whole number, not '{text}'");

    private static UserRow Check(UserRow row, string where)
    {
        if (string.IsNullOrWhiteSpace(row.Id)) throw new UsageException($"{where}id must not be empty");
        if (row.Id.Length > 64) throw new UsageException($"{where}id is longer than 64 characters");
        if (!UserRoles.TryParse(row.Role, out _)) throw new UsageException($"{where}role must be admin or client, not '{row.Role}'");
        if (row.Name.Length > 200) throw new UsageException($"{where}name is longer than 200 characters");
        return row;
    }

    internal static List<UserRow> ReadCsv(string file, bool skipBad, TextWriter? warnings)
    {
        string[] lines;
        try
        {
            // Strict UTF-8: a cp1252 export would otherwise turn "José" into "Jos\uFFFD" silently.
            lines = File.ReadAllLines(file, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true));
        }
        catch (DecoderFallbackException)
        {
            throw new UsageException($"{file}: not UTF-8 text (save the CSV as UTF-8)");
        }
        if (lines.Length == 0) throw new UsageException($"{file}: empty file");
        string[] header;
        try { header = SplitCsv(lines[0], 1).Select(h => h.Trim().ToLowerInvariant()).ToArray(); }
        catch (UsageException ex) { throw new UsageException($"{file}: line 1: {ex.Message}"); }
        if (!(header is ["id", "name", "role"] or ["id", "name", "role", "version"]))
            throw new UsageException($"{file}: line 1: header must be id,name,role or id,name,role,version");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var rows = new List<UserRow>();
        var errors = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var n = 1; n < lines.Length; n++)
        {
            if (string.IsNullOrWhiteSpace(lines[n])) continue;
            var where = $"{file}: line {n + 1}: ";
            try
            {
                var f = SplitCsv(lines[n], n + 1);
                if (f.Count != header.Length) throw new UsageException($"{where}expected {header.Length} fields, found {f.Count}");
                var row = Check(new UserRow(f[0].Trim(), f[1].Trim(), f[2].Trim(), f.Count > 3 ? ParseVersion(f[3].Trim(), where.TrimEnd(' ', ':')) : now), where);
                if (!seen.Add(row.Id)) throw new UsageException($"{where}id '{row.Id}' appears twice");
                rows.Add(row);
            }
            catch (UsageException ex)
            {
                errors.Add(ex.Message.StartsWith(where, StringComparison.Ordinal) || ex.Message.StartsWith(where.TrimEnd(' ', ':'), StringComparison.Ordinal) ? ex.Message : where + ex.Message);
            }
        }
        if (errors.Count > 0 && !skipBad) throw new UsageException(string.Join(Environment.NewLine, errors) + Environment.NewLine + "nothing was published");
        foreach (var error in errors) warnings?.WriteLine("skipped: " + error);
        return rows;
    }

    /// <summary>RFC 4180 fields of one line: commas separate, double quotes enclose, "" is a quote.</summary>
    internal static List<string> SplitCsv(string line, int lineNumber)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"' && string.IsNullOrWhiteSpace(field.ToString())) { field.Clear(); quoted = true; }   // `, "Smith, J"` too
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        if (quoted) throw new UsageException("unterminated quote");
        fields.Add(field.ToString());
        return fields;
    }
}
