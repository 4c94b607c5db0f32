using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using WsBroker.Broker.Options;

namespace WsBroker.Broker.Auth;

/// <summary>Issues HS256 tokens with the configured signing key (the dev token endpoint, tests, tools).</summary>
public sealed class JwtIssuer
{
    private readonly JsonWebTokenHandler _handler = new();
    private readonly SigningCredentials? _credentials;

    public JwtIssuer(IOptions<AuthOptions> options)
    {
        if (!string.IsNullOrEmpty(options.Value.SigningKey))
            _credentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(options.Value.SigningKey)), SecurityAlgorithms.HmacSha256);
        Issuer = options.Value.Issuer;
        Audience = options.Value.Audience;
    }

    private string? Issuer { get; }
    private string? Audience { get; }

    public bool CanIssue => _credentials is not null;

    public string Issue(string userId, string role, string name, TimeSpan lifetime)
    {
        if (_credentials is null) throw new InvalidOperationException("Auth:SigningKey is not set: cannot issue tokens");
        var expires = DateTime.UtcNow + lifetime;
        var now = lifetime > TimeSpan.Zero ? DateTime.UtcNow : expires - TimeSpan.FromHours(1);   // tests mint expired tokens
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["sub"] = userId, ["role"] = role, ["name"] = name },
            IssuedAt = now,
            NotBefore = now,
            Expires = expires,
            Issuer = Issuer,
            Audience = Audience,
            SigningCredentials = _credentials,
        });
    }
}
