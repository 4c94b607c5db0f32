namespace WsBroker.Broker.Routing;

/// <summary>
/// Time-ordered 64-bit message ids, unique across nodes: 41 bits of milliseconds since 2025-01-01 UTC, 10 bits of
/// <c>Broker:NodeId</c>, 12 bits of sequence. Strictly increasing per node, even when the clock steps back or more than
/// 4096 ids are taken in one millisecond (the generator then runs ahead of the clock until it catches up).
/// </summary>
public sealed class MessageIdGenerator
{
    public static readonly DateTimeOffset Epoch = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private const int SequenceBits = 12;
    private const int NodeBits = 10;
    private const long SequenceMask = (1L << SequenceBits) - 1;
    private readonly long _node;
    private readonly TimeProvider _clock;
    private long _state;                                   // (ms << 12) | sequence of the last id

    public MessageIdGenerator(int nodeId, TimeProvider? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nodeId);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeId, (1 << NodeBits) - 1);
        _node = nodeId;
        _clock = clock ?? TimeProvider.System;
    }

    public long Next()
    {
        while (true)
        {
            var now = (_clock.GetUtcNow() - Epoch).Ticks / TimeSpan.TicksPerMillisecond;
            var old = Volatile.Read(ref _state);
            var oldMs = old >> SequenceBits;
            var next = now > oldMs ? now << SequenceBits : old + 1;   // same ms, clock behind, or sequence overflow into the next ms
            if (Interlocked.CompareExchange(ref _state, next, old) == old)
                return ((next >> SequenceBits) << (SequenceBits + NodeBits)) | (_node << SequenceBits) | (next & SequenceMask);
        }
    }

    /// <summary>Makes every later id of this generator greater than <paramref name="id"/> (made by any node): it continues
    /// from the millisecond after it if its clock is behind. A node that takes over a conversation in a cluster calls it
    /// with the conversation's last id, so ids keep increasing whatever the clocks of the nodes.</summary>
    public void AdvancePast(long id)
    {
        var floor = ((id >> (SequenceBits + NodeBits)) + 1) << SequenceBits;
        while (true)
        {
            var old = Volatile.Read(ref _state);
            if (old >= floor || Interlocked.CompareExchange(ref _state, floor - 1, old) == old) return;
        }
    }

    /// <summary>The node id encoded in a message id.</summary>
    public static int NodeOf(long id) => (int)((id >> SequenceBits) & ((1 << NodeBits) - 1));

    /// <summary>The time encoded in a message id.</summary>
    public static DateTimeOffset TimeOf(long id) => Epoch.AddMilliseconds(id >> (SequenceBits + NodeBits));
}

/// <summary>The system clock shifted by a fixed offset (<c>Broker:ClockOffsetMs</c>: a skewed node in tests).</summary>
public sealed class OffsetClock(TimeSpan offset) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + offset;
}
