using System.Text;
using WsBroker.Broker.Auth;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// Who a STOMP session is. At CONNECT: the token is the bearer token of its <c>Authorization</c> header (the name in any
/// case), else its <c>passcode</c>, else the upgrade's <c>?access_token=</c>; <see cref="JwtValidator"/> checks it, a
/// <c>login</c> header must name the token's user, and the access policy may refuse the user. At a refresh (a SEND to
/// <c>/session/token</c>, docs/design.md §3 "Long-lived sessions"): the bearer token of its <c>authorization</c> header,
/// valid, of the same user, expiring later than the current one, and of a user the policy still lets connect.
/// </summary>
internal static class StompAuthenticator
{
    /// <summary>The principal, or null and the ERROR message that refuses the CONNECT.</summary>
    public static async ValueTask<(BrokerPrincipal? Principal, string? Refusal)> AuthenticateAsync(StompFrameView frame, string? queryToken,
        BrokerServices services)
    {
        var login = frame.GetHeaderString("login"u8);
        var token = HasAuthorization(frame, out var bearer) ? bearer : null;
        token ??= frame.GetHeaderString("passcode"u8) ?? queryToken;
        var (principal, error) = await services.Jwt.ValidateAsync(token);
        if (principal is null) return (null, "authentication failed: " + error);
        if (!string.IsNullOrEmpty(login) && login != principal.UserId) return (null, "authentication failed: login does not match the token");
        if (await services.Policy.CanConnectAsync(principal) is { } refused) return (null, refused);
        return (principal, null);
    }

    /// <summary>The principal a token refresh makes of <paramref name="current"/>, or null and the ERROR message that
    /// refuses it (the session then closes).</summary>
    public static async ValueTask<(BrokerPrincipal? Principal, string? Refusal)> RefreshAsync(StompFrameView frame, BrokerPrincipal current,
        BrokerServices services)
    {
        if (frame.HasHeader("transaction"u8)) return (null, "token refresh refused: a refresh cannot be part of a transaction");
        if (!HasAuthorization(frame, out var token) || token is null)
            return (null, "token refresh refused: send the new token as authorization:Bearer <JWT>");
        var (principal, error) = await services.Jwt.ValidateAsync(token);
        if (principal is null) return (null, "token refresh refused: " + error);
        if (principal.UserId != current.UserId) return (null, "token refresh refused: the token is for another user");
        if (principal.ExpiresAt <= current.ExpiresAt) return (null, "token refresh refused: the token does not expire later than the current one");
        if (await services.Policy.CanConnectAsync(principal) is { } refused) return (null, "token refresh refused: " + refused);
        return (principal, null);
    }

    /// <summary>True when the frame has an <c>authorization</c> header (first entry of any case); <paramref name="token"/> is
    /// its bearer token, null when the value is not <c>Bearer …</c>.</summary>
    private static bool HasAuthorization(StompFrameView frame, out string? token)
    {
        token = null;
        for (var i = 0; i < frame.HeaderCount; i++)
        {
            if (!Ascii.EqualsIgnoreCase(frame.GetHeaderName(i), "authorization"u8)) continue;
            // Only the token becomes a string (the connect rate, issue 17).
            var value = frame.GetHeaderValue(i);
            if (value.Length > 7 && Ascii.EqualsIgnoreCase(value[..7], "Bearer "u8) && value[7..].Trim(" \t\r\n\v\f"u8) is { Length: > 0 } bearer)
                token = Encoding.UTF8.GetString(bearer);
            return true;
        }
        return false;
    }
}
