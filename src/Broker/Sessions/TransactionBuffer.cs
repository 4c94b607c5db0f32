using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// A session's open STOMP transactions: the SENDs and ACKs buffered under each name until COMMIT (applied in order) or
/// ABORT (dropped). Bounded in transactions and frames. Used by the read loop only.
/// </summary>
internal sealed class TransactionBuffer(int maxTransactions, int maxFramesPerTransaction)
{
    private Dictionary<string, List<StompFrame>>? _open;

    public int Count => _open?.Count ?? 0;

    /// <summary>null when begun; else the ERROR message.</summary>
    public string? Begin(string name)
    {
        _open ??= new Dictionary<string, List<StompFrame>>(StringComparer.Ordinal);
        if (_open.ContainsKey(name)) return "transaction already begun";
        if (_open.Count >= maxTransactions) return "too many open transactions";
        _open[name] = [];
        return null;
    }

    /// <summary>null when buffered; else the ERROR message.</summary>
    public string? Add(string name, StompFrame frame)
    {
        if (_open is null || !_open.TryGetValue(name, out var frames)) return "unknown transaction";
        if (frames.Count >= maxFramesPerTransaction) return "too many frames in transaction";
        frames.Add(frame);
        return null;
    }

    /// <summary>Ends a transaction (COMMIT or ABORT) and hands over its frames in arrival order; false when unknown.</summary>
    public bool TryEnd(string name, out List<StompFrame> frames)
    {
        frames = [];
        return _open is not null && _open.Remove(name, out frames!);
    }

    /// <summary>Ends every open transaction (the session ends: STOMP aborts them) and hands over their frames.</summary>
    public List<StompFrame>[] EndAll()
    {
        if (_open is null) return [];
        List<StompFrame>[] all = [.. _open.Values];
        _open.Clear();
        return all;
    }
}
