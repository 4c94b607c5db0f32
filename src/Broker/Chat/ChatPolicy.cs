using WsBroker.Broker.Auth;
using WsBroker.Broker.Extensibility;
using WsBroker.Broker.Routing;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>The chat's access table (DESIGN.md §3) as the engine's destination policy; other destinations are open to
/// every authenticated user unless an <c>Acl</c> rule restricts them. A user the user service deleted may not connect at all, even with a token still valid.</summary>
public sealed class ChatPolicy(IUserStore users, TopicAcl acl) : IDestinationPolicy
{
    // The chat's own destinations follow the fixed table; the Acl rules govern the general ones only.
    public ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, string destination) =>
        ValueTask.FromResult(ChatDestination.Parse(destination).Kind == ChatDestinationKind.Other
            ? acl.CanSubscribe(user, destination)
            : ChatAccess.CanSubscribe(user.UserId, ChatAccess.ParseRole(user.Role), destination));

    public ValueTask<string?> CanSendAsync(BrokerPrincipal user, string destination) =>
        ValueTask.FromResult(ChatDestination.Parse(destination).Kind == ChatDestinationKind.Other
            ? acl.CanSend(user, destination)
            : ChatAccess.CanSend(user.UserId, ChatAccess.ParseRole(user.Role), destination));

    public async ValueTask<string?> CanConnectAsync(BrokerPrincipal user)
    {
        try
        {
            return await users.FindAsync(user.UserId) is { IsDeleted: true } ? "user deleted" : null;
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or PersistenceUnavailableException)
        {
            // The database is down: let the token decide (every chat SEND checks the users again before it is stored).
            return null;
        }
    }
}
