using System.Globalization;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Auth;
using WsBroker.Broker.Chat;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Options;
using WsBroker.Persistence;

namespace WsBroker.Broker.Api;

/// <summary>The REST API of docs/design.md §3: JSON, the same JWT as a Bearer header, problem bodies for every error.</summary>
public static class ChatApi
{
    public static void Map(WebApplication app)
    {
        var api = app.MapGroup("/api");
        api.MapGet("/me", MeAsync);
        api.MapGet("/contacts", ContactsAsync);
        api.MapGet("/conversations/{adminId}/{clientId}/messages", MessagesAsync);
        api.MapPost("/dev/token", DevTokenAsync);
        api.MapFallback((HttpContext _) => Problem(404, "not found", "no such API endpoint"));
    }

    private static async Task<IResult> MeAsync(HttpContext http, JwtValidator jwt, IUserStore users)
    {
        var (principal, error) = await AuthenticateAsync(http, jwt);
        if (principal is null) return error!;
        // The users table says who the user is now (a token's role and name are what they were when it was issued).
        var user = await users.FindAsync(principal.UserId);
        if (user is null) return Problem(403, "unknown user", $"{principal.UserId} is not a known user");
        if (user.IsDeleted) return Problem(403, "user deleted", $"{principal.UserId} was deleted");
        // known: what clients polled for before an unknown user got a 403 (tests/js userKnown); a 200 now always means it.
        return Results.Ok(new { userId = user.Id, name = user.Name, role = user.Role.ToWire(), known = true });
    }

    private static async Task<IResult> ContactsAsync(HttpContext http, JwtValidator jwt, IUserStore users, IMessageStore messages, IPresence presence)
    {
        var (principal, error) = await AuthenticateAsync(http, jwt);
        if (principal is null) return error!;
        var me = await users.FindAsync(principal.UserId);
        if (me is null || me.IsDeleted) return Problem(403, "unknown user", $"{principal.UserId} is not a known user");
        var summaries = (await messages.GetConversationsAsync(me.Id)).ToDictionary(s => me.Role == UserRole.Admin ? s.ClientId : s.AdminId);
        var others = await users.ListAsync(me.Role == UserRole.Admin ? UserRole.Client : UserRole.Admin);
        var contacts = others
            .Select(u => (User: u, Summary: summaries.GetValueOrDefault(u.Id)))
            .OrderByDescending(c => c.Summary?.LastMessage?.Id ?? 0).ThenBy(c => c.User.Name, StringComparer.Ordinal)
            .Select(c => new
            {
                userId = c.User.Id,
                name = c.User.Name,
                role = c.User.Role.ToWire(),
                online = presence.IsOnline(c.User.Id),
                lastMessage = c.Summary?.LastMessage is { } m ? MessageJson(m) : null,
                unread = c.Summary?.UnreadCount ?? 0,
            });
        return Results.Ok(new { contacts });
    }

    private static async Task<IResult> MessagesAsync(HttpContext http, string adminId, string clientId, string? before, string? limit,
        JwtValidator jwt, IUserStore users, IMessageStore messages)
    {
        var (principal, error) = await AuthenticateAsync(http, jwt);
        if (principal is null) return error!;
        if (principal.UserId != adminId && principal.UserId != clientId)
            return Problem(403, "forbidden", "only the two parties may read a conversation");
        if (await users.FindAsync(principal.UserId) is { IsDeleted: true })
            return Problem(403, "user deleted", $"{principal.UserId} was deleted");
        long? beforeId = null;
        if (!string.IsNullOrEmpty(before))
        {
            if (!long.TryParse(before, NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b <= 0)
                return Problem(400, "invalid before", "before must be a message id (a positive whole number)");
            beforeId = b;
        }
        var take = 50;
        if (!string.IsNullOrEmpty(limit) && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out take) || take is < 1 or > 100))
            return Problem(400, "invalid limit", "limit must be between 1 and 100");
        var admin = await users.FindAsync(adminId);
        var client = await users.FindAsync(clientId);
        if (admin is not { Role: UserRole.Admin } || client is not { Role: UserRole.Client })
            return Problem(404, "no such conversation", $"{adminId}/{clientId} is not a conversation between an administrator and a customer");
        var page = await messages.GetPageAsync(adminId, clientId, beforeId, take);
        return Results.Ok(new
        {
            messages = page.Select(MessageJson),
            nextBefore = page.Count == take ? page[^1].Id.ToString(CultureInfo.InvariantCulture) : null,
        });
    }

    private static async Task<IResult> DevTokenAsync(HttpContext http, IOptions<ChatOptions> options, BrokerMode mode, JwtIssuer issuer,
        IOptions<AuthOptions> auth, IUserStore users)
    {
        if (!(options.Value.DevTokens ?? mode.IsEmbedded) || !issuer.CanIssue) return Problem(404, "not found", "dev tokens are off (embedded mode only)");
        DevTokenRequest? request;
        try
        {
            request = await http.Request.ReadFromJsonAsync<DevTokenRequest>();
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return Problem(400, "invalid request", "send JSON {\"userId\":\"client1\"}, optionally with \"lifetimeSeconds\": a whole number");
        }
        if (string.IsNullOrWhiteSpace(request?.UserId)) return Problem(400, "invalid request", "userId is required");
        var longest = auth.Value.DevTokenLifetimeMinutes * 60;
        if (request.LifetimeSeconds is < 1 || request.LifetimeSeconds > longest)
            return Problem(400, "invalid lifetimeSeconds", $"lifetimeSeconds must be between 1 and {longest} (Auth:DevTokenLifetimeMinutes)");
        var user = await users.FindAsync(request.UserId);
        if (user is null || user.IsDeleted) return Problem(404, "unknown user", $"no user {request.UserId}");
        var role = user.Role.ToWire();
        var token = issuer.Issue(user.Id, role, user.Name, TimeSpan.FromSeconds(request.LifetimeSeconds ?? longest));
        return Results.Ok(new { token, userId = user.Id, role, name = user.Name });
    }

    /// <summary>The body of <c>POST /api/dev/token</c>; <see cref="LifetimeSeconds"/> (optional) asks for a shorter-lived token
    /// than <c>Auth:DevTokenLifetimeMinutes</c> (e.g. to see a refresh or an expiry).</summary>
    private sealed record DevTokenRequest(string? UserId, int? LifetimeSeconds);

    internal static object MessageJson(ChatMessage m) => new
    {
        id = m.Id.ToString(CultureInfo.InvariantCulture),          // 64-bit: a string, JavaScript numbers cannot hold it
        adminId = m.AdminId,
        clientId = m.ClientId,
        sender = m.SenderId,
        receiver = m.ReceiverId,
        body = m.Body,
        timestamp = m.SentAt.ToUnixTimeMilliseconds(),
        seen = m.Seen,
        seenAt = m.SeenAt?.ToUnixTimeMilliseconds(),
        clientMsgId = m.ClientMsgId,
        deliveredAt = m.DeliveredAt?.ToUnixTimeMilliseconds(),
    };

    private static async Task<(BrokerPrincipal? Principal, IResult? Error)> AuthenticateAsync(HttpContext http, JwtValidator jwt)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return (null, Problem(401, "authentication required", "send Authorization: Bearer <JWT>"));
        var (principal, error) = await jwt.ValidateAsync(header[7..].Trim());
        return principal is null ? (null, Problem(401, "authentication failed", error!)) : (principal, null);
    }

    private static IResult Problem(int status, string title, string detail) => Results.Problem(title: title, detail: detail, statusCode: status);
}
