using System.Globalization;
using System.Net.Http.Json;
using System.Runtime.InteropServices;

namespace WsBroker.Load;

/// <summary>What the tool reads of a process on this machine: the broker's resident memory and CPU time from /proc, its live
/// managed heap after a forced full GC (--gc-url), and this process's own open-file limit.</summary>
internal static partial class ProcessProbe
{
    /// <summary>POSTs to the broker's GC endpoint (WsBroker: /debug/gc) and returns its live heap after the full GC.</summary>
    public static async Task<long> ForceGcAsync(Uri url)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var response = await client.PostAsync(url, null);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        return body.GetProperty("heapAfter").GetInt64();
    }

    /// <summary>VmRSS of <paramref name="pid"/> in bytes (0 when unknown).</summary>
    public static long ResidentBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }

    /// <summary>User + system CPU time of <paramref name="pid"/> so far, in seconds (utime and stime of /proc/&lt;pid&gt;/stat,
    /// in clock ticks).</summary>
    public static double CpuSeconds(int pid) => ParseCpuTicks(File.ReadAllText($"/proc/{pid}/stat")) / (double)ClockTicksPerSecond();

    /// <summary>utime + stime of a /proc/&lt;pid&gt;/stat line: fields 14 and 15, counted after the command name, which is in
    /// parentheses and may itself hold spaces and parentheses.</summary>
    internal static long ParseCpuTicks(string stat)
    {
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');   // fields[0] is field 3 (state)
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    /// <summary>The soft open-file limit of this process (RLIMIT_NOFILE), after raising it to the hard limit when it is
    /// lower; -1 when unknown. Children of --processes inherit it.</summary>
    public static long RaiseOpenFileLimit()
    {
        if (!OperatingSystem.IsLinux() || GetRLimit(RlimitNoFile, out var limit) != 0) return -1;
        if (limit.Current < limit.Maximum)
        {
            var raised = limit with { Current = limit.Maximum };
            if (SetRLimit(RlimitNoFile, in raised) == 0) limit = raised;
        }
        return limit.Current > long.MaxValue ? long.MaxValue : (long)limit.Current;
    }

    private static long ClockTicksPerSecond() => OperatingSystem.IsLinux() && SysConf(ScClkTck) is > 0 and var hz ? hz : 100;

    private const int RlimitNoFile = 7;
    private const int ScClkTck = 2;

    [StructLayout(LayoutKind.Sequential)]
    private record struct RLimit(ulong Current, ulong Maximum);

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit")]
    private static partial int SetRLimit(int resource, in RLimit limit);

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);
}
