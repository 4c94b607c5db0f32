namespace WsBroker.Broker.Destinations;

/// <summary>
/// A destination parsed and validated once, at the edge (SEND, SUBSCRIBE, a raw topic URL), and then carried with the
/// frame: its text, its family, whether it is a pattern, and what the access policy made of it
/// (<see cref="Classification"/>, computed once per distinct destination). Grammar: <c>/</c>-separated non-empty
/// segments; in patterns <c>*</c> is one whole segment and <c>#</c> the whole last segment (zero or more trailing ones).
/// </summary>
public sealed class Destination
{
    public const string TopicPrefix = "/topic/";
    public const string UserQueuePrefix = "/user/queue/";

    /// <summary>The one destination of the <see cref="DestinationKind.Session"/> family: a SEND here refreshes the session's
    /// token (docs/design.md §3 "Long-lived sessions").</summary>
    public const string SessionToken = "/session/token";

    /// <summary>Longest destination accepted, in characters.</summary>
    public const int MaxLength = 512;

    private Destination(string text, DestinationKind kind, bool isPattern)
    {
        Text = text;
        Kind = kind;
        IsPattern = isPattern;
    }

    public string Text { get; }
    public DestinationKind Kind { get; }

    /// <summary>Contains <c>*</c> or <c>#</c>: valid for SUBSCRIBE only.</summary>
    public bool IsPattern { get; }

    /// <summary>The segments after the leading '/': <c>/topic/a/b</c> is <c>["topic", "a", "b"]</c>. A new array each call:
    /// a destination is kept for as long as it is in use (one per subscription and per cached destination), so it does not
    /// carry its segments around; the router and the policies split it when they add, remove or classify.</summary>
    public string[] SplitSegments() => Text[1..].Split('/');

    /// <summary>What the access policy made of this destination (e.g. the chat's reading of it), set once when the
    /// destination is first parsed; null for a policy that classifies nothing.</summary>
    public object? Classification { get; internal set; }

    /// <summary>Parses <paramref name="text"/>; null with the reason when it is not a destination this broker serves.</summary>
    public static Destination? Parse(string? text, out DestinationError error)
    {
        error = Validate(text, out var isPattern);
        if (error != DestinationError.None) return null;
        var kind = text!.StartsWith(TopicPrefix, StringComparison.Ordinal) ? DestinationKind.Topic
            : text.StartsWith(UserQueuePrefix, StringComparison.Ordinal) ? DestinationKind.UserQueue
            : DestinationKind.Session;
        return new Destination(text, kind, isPattern);
    }

    /// <summary>Parses a destination the broker itself names (a chat conversation, presence); throws when it is invalid.</summary>
    public static Destination Of(string text) =>
        Parse(text, out var error) ?? throw new ArgumentException($"invalid destination '{text}': {error.ToMessage()}", nameof(text));

    private static DestinationError Validate(string? text, out bool isPattern)
    {
        isPattern = false;
        if (string.IsNullOrEmpty(text)) return DestinationError.Missing;
        if (text.Length > MaxLength) return DestinationError.TooLong;
        if (text[0] != '/') return DestinationError.NotAbsolute;
        var span = text.AsSpan(1);
        while (true)
        {
            var slash = span.IndexOf('/');
            var segment = slash < 0 ? span : span[..slash];
            if (segment.IsEmpty) return DestinationError.EmptySegment;
            if (segment.IndexOfAny('*', '#') >= 0)
            {
                if (segment.Length > 1) return DestinationError.PartialWildcard;
                if (segment[0] == '#' && slash >= 0) return DestinationError.HashNotLast;
                isPattern = true;
            }
            if (slash < 0) break;
            span = span[(slash + 1)..];
        }
        // /topic/x or /user/queue/x: the family alone ("/topic") names nothing. /session/ has one name only, and no pattern.
        if (text.Length > TopicPrefix.Length && text.StartsWith(TopicPrefix, StringComparison.Ordinal)) return DestinationError.None;
        if (text.Length > UserQueuePrefix.Length && text.StartsWith(UserQueuePrefix, StringComparison.Ordinal)) return DestinationError.None;
        if (text == SessionToken) return DestinationError.None;
        return DestinationError.Unknown;
    }

    public override string ToString() => Text;
}
