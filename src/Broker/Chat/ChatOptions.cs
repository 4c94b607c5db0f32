namespace WsBroker.Broker.Chat;

/// <summary>Section <c>Chat</c>.</summary>
public sealed class ChatOptions
{
    public const string Section = "Chat";

    /// <summary>Seed the demo users admin1, client1..3 through the UserSync events at start (default: embedded mode).</summary>
    public bool? DemoUsers { get; set; }

    /// <summary>Serve <c>POST /api/dev/token</c> (default: embedded mode). Never enable it in production.</summary>
    public bool? DevTokens { get; set; }

    /// <summary>Typing notices a session may send per second (burst of the same size).</summary>
    public int TypingPerSecond { get; set; } = 5;

    /// <summary>Most stored messages a SUBSCRIBE with <c>since</c> is given before live delivery; past it the client is
    /// told where the rest starts (<c>replay:truncated</c>) and pages the REST history.</summary>
    public int MaxReplay { get; set; } = 1000;

    /// <summary>Chat messages a session may send per second, with bursts of <see cref="MessageBurst"/>; beyond it a SEND is
    /// refused on <c>/user/queue/errors</c> (<c>could-not-send-message: rate limit</c>).</summary>
    public int MessagesPerSecond { get; set; } = 100;

    public int MessageBurst { get; set; } = 500;

    /// <summary>How long a user's live inbox (<c>/user/queue/inbox</c>) is kept on a node after its last subscription there
    /// ended: a client that subscribes again to the same node within it, with <c>since</c>, is sent just what changed
    /// (after it, or elsewhere, a new snapshot). 0: only while another subscription of the user is open there.</summary>
    public int InboxRetainSeconds { get; set; } = 120;

    /// <summary>Folder with the web pages served at <c>/</c> (default: web-js next to the binary, else the first web-js in the working directory or above).</summary>
    public string? WebRoot { get; set; }

    public IEnumerable<string> Validate()
    {
        if (TypingPerSecond is < 1 or > 1000) yield return "Chat:TypingPerSecond must be between 1 and 1000";
        if (MaxReplay is < 1 or > 5_000) yield return "Chat:MaxReplay must be between 1 and 5000";
        if (InboxRetainSeconds is < 0 or > 86_400) yield return "Chat:InboxRetainSeconds must be between 0 and 86400";
        if (MessagesPerSecond < 1) yield return "Chat:MessagesPerSecond must be at least 1";
        if (MessageBurst < 1) yield return "Chat:MessageBurst must be at least 1";
        if (WebRoot is not null && !Directory.Exists(WebRoot)) yield return $"Chat:WebRoot: folder not found: {WebRoot}";
    }
}
