namespace WsBroker.Broker.Options;

/// <summary>One ACL rule: a destination pattern and who may subscribe and send there.</summary>
public sealed class AclRule
{
    /// <summary>Pattern, e.g. <c>/topic/news/#</c> or <c>/topic/alerts/*/high</c>.</summary>
    public string Destination { get; set; } = "";

    /// <summary><c>*</c> (any authenticated user), <c>role:admin</c>, <c>user:alice</c>. Empty: nobody.</summary>
    public List<string> Subscribe { get; set; } = [];

    /// <summary>Same forms as <see cref="Subscribe"/>.</summary>
    public List<string> Send { get; set; } = [];

    internal static bool IsValidPrincipal(string who) =>
        who == "*" || (who.StartsWith("role:", StringComparison.Ordinal) && who.Length > 5) || (who.StartsWith("user:", StringComparison.Ordinal) && who.Length > 5);
}
