using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Access;

/// <summary>The configured <see cref="AclOptions"/> rules, applied to SUBSCRIBE patterns and SEND destinations.</summary>
public sealed class TopicAcl
{
    private readonly (string[] Segments, AclRule Rule)[] _rules;

    public TopicAcl(IOptions<AclOptions> options) =>
        _rules = [.. options.Value.Rules.Select(r => (Destination.Of(r.Destination).SplitSegments(), r))];

    /// <summary>null when <paramref name="user"/> may subscribe to <paramref name="pattern"/>; else the ERROR message.</summary>
    public string? CanSubscribe(BrokerPrincipal user, Destination pattern) => Check(user, pattern, send: false);

    /// <summary>null when <paramref name="user"/> may send to <paramref name="destination"/>; else the business rejection.</summary>
    public string? CanSend(BrokerPrincipal user, Destination destination)
    {
        var denied = Check(user, destination, send: true);
        return denied is null ? null : "could-not-send-message: " + denied;
    }

    private string? Check(BrokerPrincipal user, Destination destination, bool send)
    {
        if (_rules.Length == 0) return null;                      // no rules: nothing to check, nothing to allocate
        var segments = destination.SplitSegments();
        foreach (var (pattern, rule) in _rules)
        {
            if (Overlaps(segments, 0, pattern, 0) && !AllowsAny(send ? rule.Send : rule.Subscribe, user))
                return $"access denied: may not {(send ? "send to" : "subscribe to")} {rule.Destination}";
        }
        return null;
    }

    private static bool AllowsAny(List<string> who, BrokerPrincipal user)
    {
        foreach (var w in who)
        {
            if (Allows(w, user)) return true;
        }
        return false;
    }

    private static bool Allows(string who, BrokerPrincipal user) =>
        who == "*"
        || (who.StartsWith("role:", StringComparison.Ordinal) && string.Equals(who[5..], user.Role, StringComparison.Ordinal))
        || (who.StartsWith("user:", StringComparison.Ordinal) && string.Equals(who[5..], user.UserId, StringComparison.Ordinal));

    /// <summary>Whether some destination matches both patterns (<c>*</c>: one segment; <c>#</c>, last: zero or more).</summary>
    internal static bool Overlaps(IReadOnlyList<string> a, int i, IReadOnlyList<string> b, int j)
    {
        while (true)
        {
            if (i < a.Count && a[i] == "#") return true;
            if (j < b.Count && b[j] == "#") return true;
            if (i == a.Count || j == b.Count) return i == a.Count && j == b.Count;
            if (a[i] != "*" && b[j] != "*" && a[i] != b[j]) return false;
            i++;
            j++;
        }
    }
}
