using System.Collections.Concurrent;

namespace WsBroker.Broker.Routing;

/// <summary>
/// Maps destinations to subscriptions. Exact destinations and wildcard patterns (<c>*</c> = one segment, <c>#</c> = zero or
/// more trailing segments; segments are separated by '/') live in one segment trie. Publishing looks the destination up in a
/// cache of match results, so a steady stream to known destinations neither locks nor allocates; subscription changes
/// invalidate only what they can affect.
/// </summary>
public sealed class TopicRouter
{
    private readonly Lock _gate = new();
    private readonly Node _root = new();
    private readonly ConcurrentDictionary<string, Subscription[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Subscription[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    private int _count;
    private const int MaxCachedDestinations = 100_000;

    public TopicRouter() => _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Number of subscriptions.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Why a pattern is not valid, or null.</summary>
    public static string? ValidatePattern(string pattern)
    {
        if (string.IsNullOrEmpty(pattern) || pattern[0] != '/') return "destination must start with '/'";
        var segments = pattern.Split('/');
        for (var i = 1; i < segments.Length; i++)
        {
            var s = segments[i];
            if (s.Length == 0) return "destination has an empty segment";
            if (s == "#" && i != segments.Length - 1) return "'#' is only allowed as the last segment";
            if (s.Length > 1 && s.AsSpan().IndexOfAny('*', '#') >= 0) return "'*' and '#' must be whole segments";
        }
        return null;
    }

    public void Add(Subscription subscription)
    {
        var segments = subscription.Destination.Split('/');
        lock (_gate)
        {
            var node = _root;
            var wildcard = false;
            for (var i = 1; i < segments.Length; i++)
            {
                var s = segments[i];
                if (s == "#")
                {
                    node.Hash = [.. node.Hash, subscription];
                    wildcard = true;
                    goto added;
                }
                if (s == "*")
                {
                    node = node.Star ??= new Node();
                    wildcard = true;
                }
                else
                {
                    node.Children ??= new Dictionary<string, Node>(StringComparer.Ordinal);
                    if (!node.Children.TryGetValue(s, out var child)) node.Children[s] = child = new Node();
                    node = child;
                }
            }
            node.Here = [.. node.Here, subscription];
        added:
            _count++;
            Invalidate(subscription.Destination, wildcard);
        }
    }

    public bool Remove(Subscription subscription)
    {
        var segments = subscription.Destination.Split('/');
        lock (_gate)
        {
            var path = new List<(Node Parent, string Key)>(segments.Length);
            var node = _root;
            var wildcard = false;
            var removed = false;
            for (var i = 1; i < segments.Length; i++)
            {
                var s = segments[i];
                if (s == "#")
                {
                    removed = TryRemove(ref node.Hash, subscription);
                    wildcard = true;
                    goto done;
                }
                Node? next;
                if (s == "*") { next = node.Star; wildcard = true; }
                else if (node.Children is null || !node.Children.TryGetValue(s, out next)) next = null;
                if (next is null) return false;
                path.Add((node, s));
                node = next;
            }
            removed = TryRemove(ref node.Here, subscription);
        done:
            if (!removed) return false;
            _count--;
            Prune(path, node);
            Invalidate(subscription.Destination, wildcard);
            return true;
        }
    }

    /// <summary>Subscriptions matching a concrete destination. The array is shared: do not modify it.</summary>
    public Subscription[] Match(ReadOnlySpan<char> destination)
    {
        if (_cacheBySpan.TryGetValue(destination, out var cached)) return cached;
        return MatchSlow(destination.ToString());
    }

    /// <inheritdoc cref="Match(ReadOnlySpan{char})"/>
    public Subscription[] Match(string destination) =>
        _cache.TryGetValue(destination, out var cached) ? cached : MatchSlow(destination);

    private Subscription[] MatchSlow(string destination)
    {
        lock (_gate)
        {
            if (_cache.TryGetValue(destination, out var cached)) return cached;
            var result = new List<Subscription>();
            var segments = destination.Split('/');
            Collect(_root, segments, 1, result);
            var array = result.Count == 0 ? [] : result.ToArray();
            if (_cache.Count >= MaxCachedDestinations) _cache.Clear();
            _cache[destination] = array;
            return array;
        }
    }

    private static void Collect(Node node, string[] segments, int index, List<Subscription> result)
    {
        result.AddRange(node.Hash);                               // '#' also matches zero trailing segments
        if (index == segments.Length)
        {
            result.AddRange(node.Here);
            return;
        }
        if (node.Children is not null && node.Children.TryGetValue(segments[index], out var child)) Collect(child, segments, index + 1, result);
        if (node.Star is not null && segments[index].Length > 0) Collect(node.Star, segments, index + 1, result);
    }

    /// <summary>Benchmarks: the trie walk without the cache.</summary>
    internal int MatchUncachedForBenchmark(string destination)
    {
        var result = new List<Subscription>();
        lock (_gate) Collect(_root, destination.Split('/'), 1, result);
        return result.Count;
    }

    private void Invalidate(string destination, bool wildcard)
    {
        if (wildcard) _cache.Clear();
        else _cache.TryRemove(destination, out _);
    }

    private static bool TryRemove(ref Subscription[] array, Subscription subscription)
    {
        var index = Array.IndexOf(array, subscription);
        if (index < 0) return false;
        array = array.Length == 1 ? [] : [.. array.AsSpan(0, index), .. array.AsSpan(index + 1)];
        return true;
    }

    private static void Prune(List<(Node Parent, string Key)> path, Node leaf)
    {
        var node = leaf;
        for (var i = path.Count - 1; i >= 0 && node.IsEmpty; i--)
        {
            var (parent, key) = path[i];
            if (key == "*") parent.Star = null;
            else parent.Children!.Remove(key);
            node = parent;
        }
    }

    private sealed class Node
    {
        public Dictionary<string, Node>? Children;
        public Node? Star;
        public Subscription[] Here = [];
        public Subscription[] Hash = [];

        public bool IsEmpty => Here.Length == 0 && Hash.Length == 0 && Star is null && (Children is null || Children.Count == 0);
    }
}
