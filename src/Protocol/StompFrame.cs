using System.Collections;

namespace WsBroker.Protocol;

/// <summary>Header entries of a frame in wire order. Repeated names are kept; lookups return the first entry
/// (STOMP 1.2: "only the first header entry SHOULD be used").</summary>
public sealed class StompHeaders : IReadOnlyList<KeyValuePair<string, string>>
{
    private readonly List<KeyValuePair<string, string>> _entries;

    public StompHeaders() => _entries = [];

    public StompHeaders(int capacity) => _entries = new List<KeyValuePair<string, string>>(capacity);

    public int Count => _entries.Count;

    public KeyValuePair<string, string> this[int index] => _entries[index];

    /// <summary>The first value for <paramref name="name"/>, or null.</summary>
    public string? this[string name] => TryGetValue(name, out var value) ? value : null;

    /// <summary>Appends an entry (a repeated name does not replace the first).</summary>
    public StompHeaders Add(string name, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value);
        _entries.Add(new(name, value));
        return this;
    }

    /// <summary>Replaces the first entry named <paramref name="name"/>, or appends one.</summary>
    public StompHeaders Set(string name, string value)
    {
        for (var i = 0; i < _entries.Count; i++)
        {
            if (_entries[i].Key == name)
            {
                _entries[i] = new(name, value);
                return this;
            }
        }
        return Add(name, value);
    }

    /// <summary>Removes every entry named <paramref name="name"/>.</summary>
    public int Remove(string name) => _entries.RemoveAll(e => e.Key == name);

    public bool TryGetValue(string name, out string value)
    {
        foreach (var entry in _entries)
        {
            if (entry.Key == name)
            {
                value = entry.Value;
                return true;
            }
        }
        value = "";
        return false;
    }

    public bool Contains(string name) => TryGetValue(name, out _);

    public List<KeyValuePair<string, string>>.Enumerator GetEnumerator() => _entries.GetEnumerator();

    IEnumerator<KeyValuePair<string, string>> IEnumerable<KeyValuePair<string, string>>.GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _entries.GetEnumerator();
}

/// <summary>A whole STOMP frame that owns its data: the model for frames a caller keeps or builds.
/// The hot path uses <see cref="StompFrameView"/> instead.</summary>
public sealed class StompFrame
{
    public StompFrame(StompCommand command, StompHeaders? headers = null, ReadOnlyMemory<byte> body = default)
    {
        if (command == StompCommand.None) throw new ArgumentOutOfRangeException(nameof(command), "a frame needs a command");
        Command = command;
        Headers = headers ?? new StompHeaders();
        Body = body;
    }

    public StompCommand Command { get; }

    public StompHeaders Headers { get; }

    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>The body decoded as UTF-8.</summary>
    public string BodyText => System.Text.Encoding.UTF8.GetString(Body.Span);

    public override string ToString() => $"{Command.ToWireString()} ({Headers.Count} headers, {Body.Length} bytes)";
}
