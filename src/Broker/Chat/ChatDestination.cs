namespace WsBroker.Broker.Chat;

/// <summary>What a destination means to the support chat (DESIGN.md §3 "Destinations").</summary>
public enum ChatDestinationKind
{
    /// <summary>Not a chat destination: general pub/sub rules apply.</summary>
    Other,
    /// <summary><c>/topic/private-chat/{adminId}/{clientId}</c>.</summary>
    Conversation,
    /// <summary><c>/topic/private-chat/{adminId}/*</c> (or <c>/#</c>): every conversation of one admin (SUBSCRIBE only).</summary>
    AdminConversations,
    /// <summary><c>/topic/typing/{userId}</c>.</summary>
    Typing,
    /// <summary><c>/topic/seen/{userId}</c>.</summary>
    Seen,
    /// <summary><c>/topic/presence</c>.</summary>
    Presence,
    /// <summary>A destination under a chat prefix that does not have the documented shape (e.g. a missing segment).</summary>
    Malformed,
    /// <summary>A wildcard pattern that could match chat destinations of other users (e.g. <c>/topic/#</c>).</summary>
    WildcardOverChat,
}

/// <summary>A destination parsed against the chat's fixed shapes. <see cref="UserId"/> is the admin id for conversations.</summary>
internal readonly record struct ChatDestination(ChatDestinationKind Kind, string? UserId = null, string? ClientId = null)
{
    public const string ConversationPrefix = "/topic/private-chat/";
    public const string TypingPrefix = "/topic/typing/";
    public const string SeenPrefix = "/topic/seen/";
    public const string Presence = "/topic/presence";

    /// <summary>The admin id of a conversation destination.</summary>
    public string? AdminId => UserId;

    public static string ConversationOf(string adminId, string clientId) => ConversationPrefix + adminId + "/" + clientId;

    /// <summary>Classifies a destination (for SUBSCRIBE it may contain the wildcards <c>*</c> and <c>#</c>).</summary>
    public static ChatDestination Parse(string destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination == Presence) return new(ChatDestinationKind.Presence);
        if (destination.StartsWith(ConversationPrefix, StringComparison.Ordinal))
        {
            var rest = destination.AsSpan(ConversationPrefix.Length);
            var slash = rest.IndexOf('/');
            if (slash <= 0) return new(IsPattern(rest) ? ChatDestinationKind.WildcardOverChat : ChatDestinationKind.Malformed);
            var admin = rest[..slash];
            var client = rest[(slash + 1)..];
            if (!IsId(admin)) return new(IsPattern(admin) ? ChatDestinationKind.WildcardOverChat : ChatDestinationKind.Malformed);
            if (client is "*" or "#") return new(ChatDestinationKind.AdminConversations, admin.ToString());
            if (!IsId(client)) return new(IsPattern(client) ? ChatDestinationKind.WildcardOverChat : ChatDestinationKind.Malformed);
            return new(ChatDestinationKind.Conversation, admin.ToString(), client.ToString());
        }
        if (destination.StartsWith(TypingPrefix, StringComparison.Ordinal)) return Single(destination.AsSpan(TypingPrefix.Length), ChatDestinationKind.Typing);
        if (destination.StartsWith(SeenPrefix, StringComparison.Ordinal)) return Single(destination.AsSpan(SeenPrefix.Length), ChatDestinationKind.Seen);
        return CouldMatchChat(destination) ? new(ChatDestinationKind.WildcardOverChat) : new(ChatDestinationKind.Other);
    }

    private static ChatDestination Single(ReadOnlySpan<char> id, ChatDestinationKind kind) =>
        IsId(id) ? new(kind, id.ToString()) : new(IsPattern(id) ? ChatDestinationKind.WildcardOverChat : ChatDestinationKind.Malformed);

    /// <summary>A user id segment: non-empty, no '/', no wildcard.</summary>
    private static bool IsId(ReadOnlySpan<char> segment) =>
        !segment.IsEmpty && segment.Length <= 64 && segment.IndexOfAny('/', '*', '#') < 0;

    private static bool IsPattern(ReadOnlySpan<char> segment) => segment.IndexOfAny('*', '#') >= 0;

    // Chat destinations with null for the id segments: a pattern that could match one of them could read other users' chat.
    private static readonly string?[][] s_chatShapes =
    [
        ["", "topic", "private-chat", null, null],
        ["", "topic", "typing", null],
        ["", "topic", "seen", null],
    ];

    /// <summary>True when a pattern such as <c>/topic/#</c> or <c>/topic/*/u1</c> could match a chat destination.</summary>
    private static bool CouldMatchChat(string pattern)
    {
        if (pattern.AsSpan().IndexOfAny('*', '#') < 0) return false;
        var segments = pattern.Split('/');
        foreach (var shape in s_chatShapes)
        {
            if (Matches(segments, shape)) return true;
        }
        return false;
    }

    private static bool Matches(string[] pattern, string?[] shape)
    {
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == "#") return true;                      // zero or more trailing segments
            if (i >= shape.Length) return false;
            if (pattern[i] == "*" || shape[i] is null) continue;     // one segment, or any concrete id
            if (pattern[i] != shape[i]) return false;
        }
        return pattern.Length == shape.Length;
    }
}
