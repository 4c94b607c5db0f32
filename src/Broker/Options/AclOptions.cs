using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Options;

/// <summary>
/// Who may use the general (non-chat) destinations, section <c>Acl</c>. Without rules every authenticated user may
/// subscribe and send anywhere (docs/design.md §3). Each rule names a destination pattern (the SUBSCRIBE syntax: <c>*</c> one
/// segment, <c>#</c> the rest) and who may subscribe and who may send there. A destination or subscription is governed
/// by every rule it overlaps, and must be allowed by all of them: subscribing to <c>/topic/#</c> needs the rights of every
/// rule under <c>/topic</c>.
/// </summary>
public sealed class AclOptions
{
    public const string Section = "Acl";

    public List<AclRule> Rules { get; set; } = [];

    public IEnumerable<string> Validate()
    {
        for (var i = 0; i < Rules.Count; i++)
        {
            var rule = Rules[i];
            var name = $"Acl:Rules:{i}";
            if (string.IsNullOrEmpty(rule.Destination) || !rule.Destination.StartsWith(Destination.TopicPrefix, StringComparison.Ordinal))
                yield return $"{name}:Destination must start with /topic/";
            else if (Destination.Parse(rule.Destination, out var error) is null)
                yield return $"{name}:Destination: {error.ToMessage()}";
            foreach (var who in rule.Subscribe.Concat(rule.Send))
            {
                if (!AclRule.IsValidPrincipal(who))
                    yield return $"{name}: '{who}' must be '*', 'role:<role>' or 'user:<id>'";
            }
        }
    }
}

