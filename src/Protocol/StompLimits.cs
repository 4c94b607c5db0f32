namespace WsBroker.Protocol;

/// <summary>Bounds on what a peer may send. A frame over any of them is a parse error, never unbounded buffering.</summary>
public sealed record StompLimits
{
    /// <summary>The defaults: frame 64 KiB, 64 headers, header line 8 KiB, body 64 KiB (docs/design.md, "Heart-beating and limits").</summary>
    public static StompLimits Default { get; } = new();

    /// <summary>Largest frame, command line to NUL inclusive.</summary>
    public int MaxFrameBytes { get; init; } = 64 * 1024;

    /// <summary>Most header lines in one frame.</summary>
    public int MaxHeaderCount { get; init; } = 64;

    /// <summary>Longest command or header line, EOL excluded.</summary>
    public int MaxHeaderLineBytes { get; init; } = 8 * 1024;

    /// <summary>Largest body.</summary>
    public int MaxBodyBytes { get; init; } = 64 * 1024;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first limit that is not positive.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxFrameBytes, 16, nameof(MaxFrameBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxHeaderCount, 1, nameof(MaxHeaderCount));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxHeaderLineBytes, 16, nameof(MaxHeaderLineBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxBodyBytes, nameof(MaxBodyBytes));
    }
}
