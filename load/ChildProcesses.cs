using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;

namespace WsBroker.Load;

/// <summary>
/// idle --processes n: a child process of the tool holding a share of the connections, seen from the parent. Every process
/// here may hold at most 20,000 open files (a hard limit), so one process cannot hold a node's worth of connections. The
/// child is this tool again (same options, its share as --connections, the hidden --child &lt;first&gt;), and the two talk in
/// lines: the parent writes a command on the child's stdin, the child answers one line on its stdout.
/// <code>
/// child: started                   (options read, ready to connect)
/// parent: connect     child: up {IdleUp as JSON}
/// parent: count       child: held {IdleHeld as JSON}
/// parent: stop, then closes stdin; the child closes its connections and exits. EOF on stdin alone also stops it.
/// </code>
/// Every wait is bounded; a child that exits, hangs or answers nonsense is reported (<see cref="Failure"/>) with the last
/// lines of its stderr, counts as holding nothing, and is killed at the end if it has not stopped.
/// </summary>
internal sealed class ChildProcess : IIdleHolder
{
    internal const string Started = "started";
    internal const string Connect = "connect";
    internal const string Up = "up";
    internal const string Count = "count";
    internal const string Held = "held";
    internal const string Stop = "stop";

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan s_countTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(60);
    // Options only the parent acts on (the measuring, the report); all but --no-progress take a value.
    private static readonly string[] s_parentOnly = ["--processes", "--connections", "--pid", "--gc-url", "--out", "--label", "--no-progress"];

    private readonly Process _process;
    private readonly int _index;
    private readonly int _share;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly Queue<string> _lastErrors = new();
    private readonly Task _readers;

    private ChildProcess(LoadOptions o, int index, int first, int share)
    {
        (_index, _share) = (index, share);
        var (host, prefix) = SelfCommand();
        var start = new ProcessStartInfo(host)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in prefix.Concat(ChildArgs(o, first, share))) start.ArgumentList.Add(arg);
        // The child inherits no descriptors (.NET opens every file and socket close-on-exec) and only the environment the
        // runtime needs.
        foreach (var name in start.Environment.Keys.Where(k => !KeepsVariable(k)).ToList()) start.Environment.Remove(name);
        try
        {
            _process = Process.Start(start) ?? throw new InvalidOperationException($"child {index} did not start");
        }
        catch (Win32Exception ex)
        {
            throw new InvalidOperationException($"child {index}: cannot start {host}: {ex.Message}", ex);
        }
        _readers = Task.WhenAll(ReadStdoutAsync(), ReadStderrAsync());
    }

    /// <summary>Why this child counts as holding nothing (exited, hung, answered nonsense), or null.</summary>
    public string? Failure { get; private set; }

    /// <summary>Starts --processes children, each with its share (the first ones one more when it does not divide), and
    /// waits until each has started or failed.</summary>
    public static async Task<IIdleHolder[]> StartAllAsync(LoadOptions o, CancellationToken cancellationToken)
    {
        var children = new List<ChildProcess>();
        try
        {
            for (int k = 0, first = 0; k < o.Processes; k++)
            {
                var share = o.Connections / o.Processes + (k < o.Connections % o.Processes ? 1 : 0);
                children.Add(new ChildProcess(o, k, first, share));
                first += share;
            }
            await Task.WhenAll(children.Select(c => c.ExpectAsync(Started, s_startTimeout, cancellationToken)));
            return [.. children];
        }
        catch
        {
            await Task.WhenAll(children.Select(c => c.DisposeAsync().AsTask()));
            throw;
        }
    }

    /// <summary>The child's command line: the parent's options without those only the parent acts on, plus its share.</summary>
    internal static List<string> ChildArgs(LoadOptions o, int first, int share)
    {
        var args = new List<string> { o.Scenario };
        for (var i = 1; i < o.Args.Count; i++)
        {
            if (!s_parentOnly.Contains(o.Args[i])) args.Add(o.Args[i]);
            else if (o.Args[i] != "--no-progress") i++;                 // and its value
        }
        args.AddRange(["--connections", share.ToString(CultureInfo.InvariantCulture), "--child", first.ToString(CultureInfo.InvariantCulture), "--no-progress"]);
        return args;
    }

    /// <summary>How to run this tool again: its apphost, or the dotnet host with its dll.</summary>
    private static (string Host, string[] Prefix) SelfCommand()
    {
        var dll = typeof(ChildProcess).Assembly.Location;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == Path.GetFileNameWithoutExtension(dll)) return (self, []);
        var dotnet = self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return (dotnet, [dll]);
    }

    private static bool KeepsVariable(string name) =>
        name is "PATH" or "HOME" or "TMPDIR" or "LANG" || name.StartsWith("DOTNET_", StringComparison.Ordinal);

    public async Task<IdleUp> ConnectAsync(CancellationToken cancellationToken)
    {
        var timeout = TimeSpan.FromSeconds(Math.Min(900, 60 + _share / 50.0));    // 50 connections/s at the very least
        return Send(Connect) && Parse<IdleUp>(await ExpectAsync(Up, timeout, cancellationToken)) is { } up ? up
            : new IdleUp(0, _share, 0, 0, Failure);
    }

    public async Task<IdleHeld> CountAsync(CancellationToken cancellationToken) =>
        Send(Count) && Parse<IdleHeld>(await ExpectAsync(Held, s_countTimeout, cancellationToken)) is { } held ? held : IdleHeld.None;

    private T? Parse<T>(string? json) where T : class
    {
        if (json is null) return null;
        try
        {
            return JsonSerializer.Deserialize<T>(json) ?? throw new JsonException("null");
        }
        catch (JsonException ex)
        {
            Fail($"answered '{json}': {ex.Message}");
            return null;
        }
    }

    private bool Send(string command)
    {
        if (Failure is not null) return false;
        try
        {
            _process.StandardInput.WriteLine(command);
            _process.StandardInput.Flush();
            return true;
        }
        catch (IOException ex)
        {
            Fail(Exited() is { } exited ? $"{exited} before '{command}'" : $"cannot be told '{command}': {ex.Message}");
            return false;
        }
    }

    /// <summary>The rest of the child's next line that starts with <paramref name="word"/>, or null (then <see cref="Failure"/>
    /// says why) when it exits or says nothing of the kind in time.</summary>
    private async Task<string?> ExpectAsync(string word, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (Failure is not null) return null;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            while (await _lines.Reader.WaitToReadAsync(limit.Token))
            {
                while (_lines.Reader.TryRead(out var line))
                {
                    if (line == word || line.StartsWith(word + " ", StringComparison.Ordinal)) return line[word.Length..].Trim();
                    await Console.Error.WriteLineAsync($"child {_index}: {line}");
                }
            }
            Fail($"{Exited() ?? "closed its stdout"} before '{word}'");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Fail($"said no '{word}' within {timeout.TotalSeconds:0} s");
        }
        return null;
    }

    /// <summary>"exited (code)" once the child has exited (waiting a moment for it), else null.</summary>
    private string? Exited() =>
        _process.WaitForExit(TimeSpan.FromSeconds(2)) ? $"exited ({_process.ExitCode.ToString(CultureInfo.InvariantCulture)})" : null;

    /// <summary>Says what went wrong with the child; the first thing is its <see cref="Failure"/>.</summary>
    private void Fail(string why)
    {
        string message;
        lock (_lastErrors) message = $"child {_index} (pid {_process.Id}) {why}" + (_lastErrors.Count == 0 ? "" : ": " + string.Join(" | ", _lastErrors));
        Failure ??= message;
        Console.Error.WriteLine($"wsbroker-load: {message}");
    }

    private async Task ReadStdoutAsync()
    {
        while (await _process.StandardOutput.ReadLineAsync() is { } line) _lines.Writer.TryWrite(line);
        _lines.Writer.TryComplete();
    }

    /// <summary>Relays the child's stderr, each line marked with the child's number, and keeps the last few for a failure.</summary>
    private async Task ReadStderrAsync()
    {
        while (await _process.StandardError.ReadLineAsync() is { } line)
        {
            await Console.Error.WriteLineAsync($"child {_index}: {line}");
            lock (_lastErrors)
            {
                _lastErrors.Enqueue(line);
                if (_lastErrors.Count > 3) _lastErrors.Dequeue();
            }
        }
    }

    /// <summary>Tells the child to stop and closes its stdin; kills it if it has not exited within a minute.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) Send(Stop);
        try { _process.StandardInput.Close(); }
        catch (IOException) { }                                      // best effort: a dead child's pipe is broken
        using var limit = new CancellationTokenSource(s_stopTimeout);
        try
        {
            await _process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            Fail($"did not stop within {s_stopTimeout.TotalSeconds:0} s: killed");
            _process.Kill();
            await _process.WaitForExitAsync(CancellationToken.None);
        }
        await _readers;
        _process.Dispose();
    }

    // ---- the child's side ---------------------------------------------------------------------------------------------------

    /// <summary>The child's main: holds its share (<see cref="IdleConnections"/>) and answers the parent's commands until
    /// <c>stop</c> or the end of stdin (the parent is gone). Returns the exit code.</summary>
    public static async Task<int> RunChildAsync(LoadOptions o, Stream input, TextWriter output)
    {
        var parentGone = new CancellationTokenSource();              // not disposed: the stdin thread may cancel it at exit
        var commands = Channel.CreateUnbounded<string>();
        _ = Task.Factory.StartNew(() =>
        {
            using var reader = new StreamReader(input);
            while (reader.ReadLine() is { } line) commands.Writer.TryWrite(line.Trim());
            commands.Writer.TryComplete();
            parentGone.Cancel();
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await using var connections = new IdleConnections(o, o.ChildOffset ?? 0, o.Connections);
        await output.WriteLineAsync(Started);
        await foreach (var command in commands.Reader.ReadAllAsync())
        {
            switch (command)
            {
                case Connect:
                    await output.WriteLineAsync($"{Up} {JsonSerializer.Serialize(await connections.ConnectAsync(parentGone.Token))}");
                    break;
                case Count:
                    await output.WriteLineAsync($"{Held} {JsonSerializer.Serialize(await connections.CountAsync(parentGone.Token))}");
                    break;
                case Stop:
                    return 0;
                default:
                    await Console.Error.WriteLineAsync($"unknown command '{command}'");
                    break;
            }
        }
        return 0;
    }
}
