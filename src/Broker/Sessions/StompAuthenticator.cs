using System.Text;
using WsBroker.Broker.Auth;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// Who a STOMP CONNECT authenticates as: the token is the bearer token of its <c>Authorization</c> header, else its
/// <c>passcode</c>, else the upgrade's <c>?access_token=</c>; <see cref="JwtValidator"/> checks it, a <c>login</c> header
/// must name the token's user, and the access policy may refuse the user.
/// </summary>
internal static class StompAuthenticator
{
    /// <summary>The principal, or null and the ERROR message that refuses the CONNECT.</summary>
    public static async ValueTask<(BrokerPrincipal? Principal, string? Refusal)> AuthenticateAsync(StompFrameView frame, string? queryToken,
        BrokerServices services)
    {
        var login = frame.GetHeaderString("login"u8);
        string? token = null;
        if (frame.TryGetHeader("Authorization"u8, out var authorization) || frame.TryGetHeader("authorization"u8, out authorization))
        {
            var text = Encoding.UTF8.GetString(authorization);
            token = text.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? text[7..].Trim() : null;
        }
        token ??= frame.GetHeaderString("passcode"u8) ?? queryToken;
        var (principal, error) = await services.Jwt.ValidateAsync(token);
        if (principal is null) return (null, "authentication failed: " + error);
        if (!string.IsNullOrEmpty(login) && login != principal.UserId) return (null, "authentication failed: login does not match the token");
        if (await services.Policy.CanConnectAsync(principal) is { } refused) return (null, refused);
        return (principal, null);
    }
}
