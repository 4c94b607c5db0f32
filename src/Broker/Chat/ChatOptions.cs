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

    /// <summary>Folder with the web pages served at <c>/</c> (default: web-js next to the binary, else the first web-js in the working directory or above).</summary>
    public string? WebRoot { get; set; }

    public IEnumerable<string> Validate()
    {
        if (TypingPerSecond is < 1 or > 1000) yield return "Chat:TypingPerSecond must be between 1 and 1000";
        if (WebRoot is not null && !Directory.Exists(WebRoot)) yield return $"Chat:WebRoot: folder not found: {WebRoot}";
    }
}
