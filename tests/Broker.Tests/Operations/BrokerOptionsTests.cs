using WsBroker.Broker.Options;

namespace WsBroker.Broker.Tests.Operations;

/// <summary><see cref="BrokerOptions.Validate"/>: every rule refuses the value just past its bound, names its option, and
/// takes the bound itself; the defaults pass. (A start with a refused value exits 2: <c>ConfigurationTests</c>.)</summary>
public sealed class BrokerOptionsTests
{
    private const int Day = BrokerOptions.MaxTimeMs;

    public static TheoryData<string, int, int, string> Bounds => new()
    {
        // option, the bound (taken), just past it (refused), the problem
        { nameof(BrokerOptions.NodeId), 1023, 1024, "Broker:NodeId must be between 0 and 1023" },
        { nameof(BrokerOptions.NodeId), 0, -1, "Broker:NodeId must be between 0 and 1023" },
        { nameof(BrokerOptions.MaxFrameBytes), 256, 255, "Broker:MaxFrameBytes must be at least 256" },
        { nameof(BrokerOptions.MaxHeaderCount), 4, 3, "Broker:MaxHeaderCount must be at least 4" },
        { nameof(BrokerOptions.MaxHeaderLineBytes), 64, 63, "Broker:MaxHeaderLineBytes must be at least 64" },
        { nameof(BrokerOptions.MaxBodyBytes), 0, -1, "Broker:MaxBodyBytes must not be negative" },
        { nameof(BrokerOptions.MaxSubscriptionsPerSession), 1, 0, "Broker:MaxSubscriptionsPerSession must be at least 1" },
        { nameof(BrokerOptions.OutboundQueueFrames), 2, 1, "Broker:OutboundQueueFrames must be at least 2" },
        { nameof(BrokerOptions.SlowConsumerMs), 100, 99, $"Broker:SlowConsumerMs must be between 100 and {Day}" },
        { nameof(BrokerOptions.SlowConsumerMs), Day, Day + 1, $"Broker:SlowConsumerMs must be between 100 and {Day}" },
        { nameof(BrokerOptions.FlowControlStallMs), 10, 9, $"Broker:FlowControlStallMs must be between 10 and {Day}" },
        { nameof(BrokerOptions.FlowControlStallMs), Day, Day + 1, $"Broker:FlowControlStallMs must be between 10 and {Day}" },
        { nameof(BrokerOptions.MaxUnacked), 1, 0, "Broker:MaxUnacked must be at least 1" },
        { nameof(BrokerOptions.MaxTransactions), 1, 0, "Broker:MaxTransactions must be at least 1" },
        { nameof(BrokerOptions.MaxFramesPerTransaction), 1, 0, "Broker:MaxFramesPerTransaction must be at least 1" },
        { nameof(BrokerOptions.HeartBeatSendMs), 0, -1, $"Broker:HeartBeatSendMs must be 0 (off) or between 100 and {Day}" },
        { nameof(BrokerOptions.HeartBeatSendMs), 100, 99, $"Broker:HeartBeatSendMs must be 0 (off) or between 100 and {Day}" },
        { nameof(BrokerOptions.HeartBeatSendMs), Day, Day + 1, $"Broker:HeartBeatSendMs must be 0 (off) or between 100 and {Day}" },
        { nameof(BrokerOptions.HeartBeatReceiveMs), 0, -1, $"Broker:HeartBeatReceiveMs must be 0 (off) or between 100 and {Day}" },
        { nameof(BrokerOptions.HeartBeatReceiveMs), 100, 99, $"Broker:HeartBeatReceiveMs must be 0 (off) or between 100 and {Day}" },
        { nameof(BrokerOptions.HeartBeatReceiveMs), Day, Day + 1, $"Broker:HeartBeatReceiveMs must be 0 (off) or between 100 and {Day}" },
        // Twice this wrapped negative in the raw URL's keep-alive before the bound, leaving raw clients 2 s of silence.
        { nameof(BrokerOptions.HeartBeatReceiveMs), Day, int.MaxValue / 2 + 1, $"Broker:HeartBeatReceiveMs must be 0 (off) or between 100 and {Day}" },
        { nameof(BrokerOptions.ConnectTimeoutMs), 100, 99, $"Broker:ConnectTimeoutMs must be between 100 and {Day}" },
        { nameof(BrokerOptions.ConnectTimeoutMs), Day, Day + 1, $"Broker:ConnectTimeoutMs must be between 100 and {Day}" },
        { nameof(BrokerOptions.ConnectTimeoutMs), Day, int.MaxValue, $"Broker:ConnectTimeoutMs must be between 100 and {Day}" },
        { nameof(BrokerOptions.PartialFrameTimeoutMs), 100, 99, $"Broker:PartialFrameTimeoutMs must be between 100 and {Day}" },
        { nameof(BrokerOptions.PartialFrameTimeoutMs), Day, Day + 1, $"Broker:PartialFrameTimeoutMs must be between 100 and {Day}" },
        { nameof(BrokerOptions.ShutdownTimeoutMs), 0, -1, $"Broker:ShutdownTimeoutMs must be between 0 and {Day}" },
        { nameof(BrokerOptions.ShutdownTimeoutMs), Day, Day + 1, $"Broker:ShutdownTimeoutMs must be between 0 and {Day}" },
        { nameof(BrokerOptions.MaxConnections), 0, -1, "Broker:MaxConnections must be between 0 and 10000000" },
        { nameof(BrokerOptions.MaxConnections), 10_000_000, 10_000_001, "Broker:MaxConnections must be between 0 and 10000000" },
    };

    [Fact]
    public void The_defaults_pass() => Assert.Empty(new BrokerOptions().Validate());

    [Theory]
    [MemberData(nameof(Bounds))]
    public void Each_bound_is_taken_and_the_value_past_it_refused(string option, int bound, int past, string problem)
    {
        Assert.Empty(With(option, bound).Validate());
        Assert.Equal([problem], With(option, past).Validate());
    }

    [Fact]
    public void The_queue_marks_are_judged_against_each_other()
    {
        Assert.Equal(["Broker:OutboundQueueBytes must be at least Broker:MaxFrameBytes"],
            new BrokerOptions { MaxFrameBytes = 2 * 1024 * 1024 }.Validate());
        Assert.Equal(["Broker:OutboundQueueHardCapFrames must be at least Broker:OutboundQueueFrames"],
            new BrokerOptions { OutboundQueueHardCapFrames = 1023 }.Validate());
        Assert.Equal(["Broker:OutboundQueueHardCapBytes must be at least Broker:OutboundQueueBytes"],
            new BrokerOptions { OutboundQueueHardCapBytes = 1024 * 1024 - 1 }.Validate());
    }

    private static BrokerOptions With(string option, int value)
    {
        var options = new BrokerOptions();
        typeof(BrokerOptions).GetProperty(option)!.SetValue(options, value);
        return options;
    }
}
