using System.Diagnostics;
using HdrHistogram;

namespace WsBroker.Load.Tests;

public sealed class PacerTests
{
    [Fact]
    public async Task Run_SendsEachMessageOnceInOrder_StampedWithItsIntendedTime()
    {
        var calls = new List<(long K, long Intended, long Actual)>();
        var before = Stopwatch.GetTimestamp();
        var lag = await Pacer.RunAsync(40, 2_000, (k, intended) =>
        {
            calls.Add((k, intended, Stopwatch.GetTimestamp()));
            return ValueTask.CompletedTask;
        }, CancellationToken.None);

        Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), calls.Select(c => c.K));
        Assert.Equal(40, lag.TotalCount);
        var spacing = Stopwatch.Frequency / 2_000.0;
        var start = calls[0].Intended;
        Assert.True(start >= before);
        foreach (var (k, intended, actual) in calls)
        {
            Assert.Equal(start + (long)(k * spacing), intended);    // the schedule, not when the send happened to run
            Assert.True(actual >= intended, $"message {k} left before its time");
        }
    }

    [Fact]
    public async Task Run_BlockedSend_ShowsAsLagNotAsALowerRate()
    {
        var intendedTimes = new List<long>();
        var lag = await Pacer.RunAsync(20, 1_000, async (k, intended) =>
        {
            intendedTimes.Add(intended);
            if (k == 5) await Task.Delay(50);                        // the broker stalls this sender for 50 ms
        }, CancellationToken.None);

        // Messages 6.. keep their original schedule (1 ms apart) although they left up to ~50 ms late.
        var spacing = Stopwatch.Frequency / 1_000.0;
        Assert.Equal(intendedTimes[0] + (long)(10 * spacing), intendedTimes[10]);
        Assert.True(lag.GetMaxValue() >= 40_000, $"max lag {lag.GetMaxValue()} µs");
    }

    [Fact]
    public async Task Run_Cancelled_Stops()
    {
        using var cancel = new CancellationTokenSource();
        var sent = 0;
        await Pacer.RunAsync(1_000_000, 1_000, (k, _) =>
        {
            if (++sent == 10) cancel.Cancel();
            return ValueTask.CompletedTask;
        }, cancel.Token);
        Assert.Equal(10, sent);
    }
}
