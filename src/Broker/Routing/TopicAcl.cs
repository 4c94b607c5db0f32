using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Routing;

/// <summary>The configured <see cref="AclOptions"/> rules, applied to SUBSCRIBE patterns and SEND destinations.</summary>
public sealed class TopicAcl
{
    private readonly (string[] Segments, AclRule Rule)[] _rules;

    public TopicAcl(IOptions<AclOptions> options) =>
        _rules = [.. options.Value.Rules.Select(r => (r.Destination.Split('/'), r))];

    /// <summary>null when <paramref name="user"/> may subscribe to <paramref name="pattern"/>; else the ERROR message.</summary>
    public string? CanSubscribe(BrokerPrincipal user, string pattern) => Check(user, pattern, r => r.Subscribe, "subscribe to");

    /// <summary>null when <paramref name="user"/> may send to <paramref name="destination"/>; else the business rejection.</summary>
    public string? CanSend(BrokerPrincipal user, string destination)
    {
        var denied = Check(user, destination, r => r.Send, "send to");
        return denied is null ? null : "could-not-send-message: " + denied;
    }

    private string? Check(BrokerPrincipal user, string destination, Func<AclRule, List<string>> who, string verb)
    {
        if (_rules.Length == 0) return null;
        var segments = destination.Split('/');
        foreach (var (pattern, rule) in _rules)
        {
            if (Overlaps(segments, 0, pattern, 0) && !who(rule).Any(w => Allows(w, user)))
                return $"access denied: may not {verb} {rule.Destination}";
        }
        return null;
    }

    private static bool Allows(string who, BrokerPrincipal user) =>
        who == "*"
        || (who.StartsWith("role:", StringComparison.Ordinal) && string.Equals(who[5..], user.Role, StringComparison.Ordinal))
        || (who.StartsWith("user:", StringComparison.Ordinal) && string.Equals(who[5..], user.UserId, StringComparison.Ordinal));

    /// <summary>Whether some destination matches both patterns (<c>*</c>: one segment; <c>#</c>, last: zero or more).</summary>
    internal static bool Overlaps(string[] a, int i, string[] b, int j)
    {
        while (true)
        {
            if (i < a.Length && a[i] == "#") return true;
            if (j < b.Length && b[j] == "#") return true;
            if (i == a.Length || j == b.Length) return i == a.Length && j == b.Length;
            if (a[i] != "*" && b[j] != "*" && a[i] != b[j]) return false;
            i++;
            j++;
        }
    }
}
