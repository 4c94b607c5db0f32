namespace WsBroker.Broker.Chat;

/// <summary>What a destination means to the support chat (docs/design.md §3 "Destinations").</summary>
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
