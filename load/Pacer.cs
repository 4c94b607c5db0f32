using System.Diagnostics;
using System.Runtime.InteropServices;
using HdrHistogram;

namespace WsBroker.Load;

/// <summary>
/// Sends at a fixed rate from a dedicated thread, stamping each message with the time it SHOULD have left (coordinated
/// omission: a sender that falls behind shows up as latency, not as a quietly lower rate).
/// </summary>
/// <remarks>
/// The wait between messages sleeps in the kernel (<c>clock_nanosleep</c> with the thread's timer slack set to 1 µs) until
/// shortly before the intended time and only spins the last <see cref="SpinTicks"/>, yielding the core while it does.
/// The earlier pacer spun on a pool thread between every message and took a whole core of this 2-core machine from the
/// broker under test (load_cpu_cores 1.3 at 5,000 msg/s); this one wakes within tens of microseconds and costs a fraction
/// of that.
/// </remarks>
internal static partial class Pacer
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000;          // 50 µs

    /// <summary>
    /// Calls <paramref name="send"/> for k = 0..total-1 at start + k/rate with that intended time (Stopwatch ticks).
    /// Returns how late each send started (µs): the load generator's own share of the measured latency.
    /// </summary>
    public static Task<LongHistogram> RunAsync(long total, int rate, Func<long, long, ValueTask> send, CancellationToken cancellationToken) =>
        Task.Factory.StartNew(() => Run(total, rate, send, cancellationToken), cancellationToken,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static LongHistogram Run(long total, int rate, Func<long, long, ValueTask> send, CancellationToken cancellationToken)
    {
        var lag = new LongHistogram(TimeSpan.TicksPerMinute / 10, 3);
        var ticksPerMicrosecond = Stopwatch.Frequency / 1_000_000.0;
        LowerTimerSlack();
        var realTime = TryRealTime();
        var start = Stopwatch.GetTimestamp();
        var ticksPerMessage = (double)Stopwatch.Frequency / rate;
        for (long k = 0; k < total && !cancellationToken.IsCancellationRequested; k++)
        {
            var intended = start + (long)(k * ticksPerMessage);
            WaitUntil(intended, realTime);
            lag.RecordValue(Math.Max(0, (long)((Stopwatch.GetTimestamp() - intended) / ticksPerMicrosecond)));
            try
            {
                var pending = send(k, intended);
                if (!pending.IsCompletedSuccessfully) pending.AsTask().GetAwaiter().GetResult();
            }
            catch (Exception ex) when (ex is OperationCanceledException or System.Net.WebSockets.WebSocketException) { break; }
        }
        return lag;
    }

    private static void WaitUntil(long intended, bool realTime)
    {
        var wait = intended - Stopwatch.GetTimestamp();
        if (realTime)
        {
            // A real-time thread is woken on time even when both cores are busy, so it need not spin.
            if (wait > 0) Sleep(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
            return;
        }
        if (wait > SpinTicks) Sleep(TimeSpan.FromSeconds((double)(wait - SpinTicks) / Stopwatch.Frequency));
        while (Stopwatch.GetTimestamp() < intended) Thread.Yield();
    }

    private static void Sleep(TimeSpan span)
    {
        if (!OperatingSystem.IsLinux())
        {
            Thread.Sleep(span);
            return;
        }
        var request = new TimeSpec { Seconds = (long)span.TotalSeconds, Nanoseconds = span.Ticks % TimeSpan.TicksPerSecond * 100 };
        _ = ClockNanosleep(ClockMonotonic, 0, in request, out _);
    }

    private static void LowerTimerSlack()
    {
        if (OperatingSystem.IsLinux()) _ = Prctl(PrSetTimerSlack, 1000, 0, 0, 0);    // 1 µs instead of the default 50 µs
    }

    /// <summary>
    /// Moves the pacing thread to SCHED_FIFO (needs root or CAP_SYS_NICE). Under the normal scheduler a sleeping thread
    /// woken on a busy 2-core machine waits for the running one's slice, and that wait (up to milliseconds) lands in
    /// the measured latency of every broker alike. The thread sleeps almost all the time, so it takes little CPU.
    /// </summary>
    private static bool TryRealTime()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("WSBROKER_LOAD_NO_RT") == "1") return false;
        var param = 10;
        return SchedSetscheduler(0, SchedFifo, in param) == 0;
    }

    private const int SchedFifo = 1;
    private const int ClockMonotonic = 1;
    private const int PrSetTimerSlack = 29;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, in TimeSpec request, out TimeSpec remaining);

    [LibraryImport("libc", EntryPoint = "sched_setscheduler")]
    private static partial int SchedSetscheduler(int pid, int policy, in int priority);

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);
}
