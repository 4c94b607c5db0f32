using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using WsBroker.Broker.Options;
using WsBroker.Persistence;

namespace WsBroker.Broker.Auth;

/// <summary>Validates the JWTs clients present (HS256 with <c>Auth:SigningKey</c>, RS256 with <c>Auth:PublicKeyPath</c>).</summary>
public sealed class JwtValidator
{
    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly TokenValidationParameters _parameters;

    public JwtValidator(IOptions<AuthOptions> options)
    {
        var auth = options.Value;
        var keys = new List<SecurityKey>();
        var algorithms = new List<string>();
        if (!string.IsNullOrEmpty(auth.SigningKey))
        {
            keys.Add(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(auth.SigningKey)));
            algorithms.Add(SecurityAlgorithms.HmacSha256);
        }
        if (!string.IsNullOrEmpty(auth.PublicKeyPath))
        {
            var rsa = RSA.Create();
            rsa.ImportFromPem(File.ReadAllText(auth.PublicKeyPath));
            keys.Add(new RsaSecurityKey(rsa));
            algorithms.Add(SecurityAlgorithms.RsaSha256);
        }
        _parameters = new TokenValidationParameters
        {
            IssuerSigningKeys = keys,
            ValidAlgorithms = algorithms,
            ValidateIssuer = !string.IsNullOrEmpty(auth.Issuer),
            ValidIssuer = auth.Issuer,
            ValidateAudience = !string.IsNullOrEmpty(auth.Audience),
            ValidAudience = auth.Audience,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = TimeSpan.FromSeconds(auth.ClockSkewSeconds),
        };
    }

    /// <summary>The tolerance on <c>exp</c> and <c>nbf</c> (<c>Auth:ClockSkewSeconds</c>): a session lives until its token's
    /// <c>exp</c> plus this.</summary>
    public TimeSpan ClockSkew => _parameters.ClockSkew;

    /// <summary>The principal of a valid token, or the client-safe reason it was refused.</summary>
    public async ValueTask<(BrokerPrincipal? Principal, string? Error)> ValidateAsync(string? token)
    {
        if (string.IsNullOrWhiteSpace(token)) return (null, "no token");
        if (token.Length > 8192) return (null, "token too long");
        TokenValidationResult result;
        try
        {
            result = await _handler.ValidateTokenAsync(token, _parameters);
        }
        catch (ArgumentException)
        {
            return (null, "malformed token");
        }
        if (!result.IsValid)
        {
            return (null, result.Exception switch
            {
                SecurityTokenExpiredException => "token expired",
                SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => "invalid signature",
                SecurityTokenInvalidAlgorithmException => "algorithm not allowed",
                SecurityTokenNoExpirationException => "token has no exp",
                SecurityTokenMalformedException => "malformed token",
                SecurityTokenInvalidIssuerException => "wrong issuer",
                SecurityTokenInvalidAudienceException => "wrong audience",
                _ => "invalid token",
            });
        }
        // The claims are read from the token's payload: the result's Claims dictionary would build a ClaimsIdentity for
        // every CONNECT (the connect rate, issue 17).
        if (result.SecurityToken is not JsonWebToken jwt) return (null, "invalid token");
        var sub = Claim(jwt, "sub");
        if (string.IsNullOrEmpty(sub) || sub.Length > 64) return (null, "token has no valid sub");
        // The roles are a handful of words: the literal is kept, not the token's copy (one string less per session).
        var role = Claim(jwt, "role") switch
        {
            null or "" => "",
            UserRoles.Client => UserRoles.Client,
            UserRoles.Admin => UserRoles.Admin,
            var other => other,
        };
        var name = Claim(jwt, "name") ?? sub;
        // A token without exp is refused above (RequireExpirationTime); ValidTo is MinValue for one, read as "never".
        var exp = jwt.ValidTo != DateTime.MinValue ? new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero) : DateTimeOffset.MaxValue;
        return (new BrokerPrincipal(sub, role, name, exp), null);
    }

    private static string? Claim(JsonWebToken jwt, string type) => jwt.TryGetPayloadValue<object>(type, out var value) ? value?.ToString() : null;
}

