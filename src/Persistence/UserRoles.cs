namespace WsBroker.Persistence;

/// <summary>The one mapping between <see cref="UserRole"/> and its text in tokens, user events, the users table and the
/// REST API.</summary>
public static class UserRoles
{
    public const string Admin = "admin";
    public const string Client = "client";

    /// <summary>Parses <c>admin</c> or <c>client</c> (exact, case-sensitive); false for anything else, null included.</summary>
    public static bool TryParse(string? text, out UserRole role)
    {
        switch (text)
        {
            case Admin:
                role = UserRole.Admin;
                return true;
            case Client:
                role = UserRole.Client;
                return true;
            default:
                role = default;
                return false;
        }
    }

    /// <summary>The text of <paramref name="role"/>: <c>admin</c> or <c>client</c>.</summary>
    public static string ToWire(this UserRole role) => role switch
    {
        UserRole.Admin => Admin,
        UserRole.Client => Client,
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "unknown user role"),
    };
}
