namespace WsBroker.Broker.Chat;

/// <summary>A per-session token bucket: <c>rate</c> tokens per second, bursts of <c>burst</c> (0: the rate).</summary>
internal sealed class TokenBucket(int rate, int burst = 0)
{
    private readonly int _burst = burst > 0 ? burst : rate;
    private readonly Lock _gate = new();
    private double _tokens = burst > 0 ? burst : rate;
    private long _lastMs = Environment.TickCount64;

    public bool TryTake()
    {
        lock (_gate)
        {
            var now = Environment.TickCount64;
            _tokens = Math.Min(_burst, _tokens + (now - _lastMs) * rate / 1000.0);
            _lastMs = now;
            if (_tokens < 1) return false;
            _tokens--;
            return true;
        }
    }
}
