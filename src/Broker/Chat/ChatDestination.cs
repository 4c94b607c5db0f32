using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Chat;

/// <summary>A destination read against the chat's fixed shapes, once per distinct destination (it is the chat policy's
/// <see cref="Destination.Classification"/>). <see cref="UserId"/> is the admin id for conversations.</summary>
public sealed record ChatDestination(ChatDestinationKind Kind, string? UserId = null, string? ClientId = null)
{
    public const string ConversationPrefix = "/topic/private-chat/";
    public const string TypingPrefix = "/topic/typing/";
    public const string SeenPrefix = "/topic/seen/";
    public const string Presence = "/topic/presence";

    private static readonly ChatDestination s_other = new(ChatDestinationKind.Other);

    /// <summary>The admin id of a conversation destination.</summary>
    public string? AdminId => UserId;

    public static string ConversationOf(string adminId, string clientId) => ConversationPrefix + adminId + "/" + clientId;

    /// <summary>The chat's reading of <paramref name="destination"/>: its classification when the chat policy made one.</summary>
    public static ChatDestination Of(Destination destination) => destination.Classification as ChatDestination ?? Parse(destination);

    /// <summary>Classifies a parsed destination (for SUBSCRIBE it may be a pattern).</summary>
    public static ChatDestination Parse(Destination destination)
    {
        IReadOnlyList<string> s = destination.SplitSegments();
        if (destination.Kind != DestinationKind.Topic) return s_other;
        if (s.Count == 2 && s[1] == "presence") return new(ChatDestinationKind.Presence);
        switch (s[1])
        {
            case "private-chat":
                if (s.Count == 3) return new(IsPattern(s[2]) ? ChatDestinationKind.WildcardOverChat : ChatDestinationKind.Malformed);
                if (IsPattern(s[2])) return new(ChatDestinationKind.WildcardOverChat);
                if (s.Count > 4) return new(AnyPattern(s, 3) ? ChatDestinationKind.WildcardOverChat : ChatDestinationKind.Malformed);
                if (!IsId(s[2])) return new(ChatDestinationKind.Malformed);
                if (IsPattern(s[3])) return new(ChatDestinationKind.AdminConversations, s[2]);
                return IsId(s[3]) ? new(ChatDestinationKind.Conversation, s[2], s[3]) : new(ChatDestinationKind.Malformed);
            case "typing":
                return Single(s, ChatDestinationKind.Typing);
            case "seen":
                return Single(s, ChatDestinationKind.Seen);
        }
        return CouldMatchChat(s) ? new(ChatDestinationKind.WildcardOverChat) : s_other;
    }

    private static ChatDestination Single(IReadOnlyList<string> s, ChatDestinationKind kind) =>
        s.Count != 3 ? new(AnyPattern(s, 2) ? ChatDestinationKind.WildcardOverChat : ChatDestinationKind.Malformed)
        : IsPattern(s[2]) ? new(ChatDestinationKind.WildcardOverChat)
        : IsId(s[2]) ? new(kind, s[2]) : new(ChatDestinationKind.Malformed);

    /// <summary>A user id segment: at most 64 characters (the parser has already refused empty segments).</summary>
    private static bool IsId(string segment) => segment.Length <= 64;

    private static bool IsPattern(string segment) => segment is "*" or "#";

    private static bool AnyPattern(IReadOnlyList<string> segments, int from)
    {
        for (var i = from; i < segments.Count; i++)
        {
            if (IsPattern(segments[i])) return true;
        }
        return false;
    }

    // Chat destinations with null for the id segments: a pattern that could match one of them could read other users' chat.
    private static readonly string?[][] s_chatShapes =
    [
        ["topic", "private-chat", null, null],
        ["topic", "typing", null],
        ["topic", "seen", null],
    ];

    /// <summary>True when a pattern such as <c>/topic/#</c> or <c>/topic/*/u1</c> could match a chat destination.</summary>
    private static bool CouldMatchChat(IReadOnlyList<string> pattern)
    {
        foreach (var shape in s_chatShapes)
        {
            if (Matches(pattern, shape)) return true;
        }
        return false;
    }

    private static bool Matches(IReadOnlyList<string> pattern, string?[] shape)
    {
        var wildcard = false;
        for (var i = 0; i < pattern.Count; i++)
        {
            if (pattern[i] == "#") return true;                      // zero or more trailing segments
            if (i >= shape.Length) return false;
            if (pattern[i] == "*") { wildcard = true; continue; }    // one segment
            if (shape[i] is null) continue;                          // any concrete id
            if (pattern[i] != shape[i]) return false;
        }
        return wildcard && pattern.Count == shape.Length;
    }
}
