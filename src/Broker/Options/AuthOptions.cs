namespace WsBroker.Broker.Options;

/// <summary>JWT settings, section <c>Auth</c>.</summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>HS256 secret (UTF-8), at least 32 bytes.</summary>
    public string? SigningKey { get; set; }
    /// <summary>PEM file with the RS256 public key.</summary>
    public string? PublicKeyPath { get; set; }
    /// <summary>Expected <c>iss</c>, checked when set.</summary>
    public string? Issuer { get; set; }
    /// <summary>Expected <c>aud</c>, checked when set.</summary>
    public string? Audience { get; set; }
    public int ClockSkewSeconds { get; set; } = 30;
    /// <summary>Lifetime of tokens issued by <c>POST /api/dev/token</c>.</summary>
    public int DevTokenLifetimeMinutes { get; set; } = 12 * 60;

    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrEmpty(SigningKey) && string.IsNullOrEmpty(PublicKeyPath))
            yield return "Auth:SigningKey or Auth:PublicKeyPath must be set";
        if (!string.IsNullOrEmpty(SigningKey) && System.Text.Encoding.UTF8.GetByteCount(SigningKey) < 32)
            yield return "Auth:SigningKey must be at least 32 bytes";
        if (!string.IsNullOrEmpty(PublicKeyPath) && !File.Exists(PublicKeyPath))
            yield return $"Auth:PublicKeyPath: file not found: {PublicKeyPath}";
        if (ClockSkewSeconds is < 0 or > 600) yield return "Auth:ClockSkewSeconds must be between 0 and 600";
        if (DevTokenLifetimeMinutes is < 1 or > 7 * 24 * 60) yield return "Auth:DevTokenLifetimeMinutes must be between 1 and 10080";
    }
}
