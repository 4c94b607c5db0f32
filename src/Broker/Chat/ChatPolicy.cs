using WsBroker.Broker.Auth;
using WsBroker.Broker.Extensibility;

namespace WsBroker.Broker.Chat;

/// <summary>The chat's access table (DESIGN.md §3) as the engine's destination policy; other destinations stay open to
/// every authenticated user.</summary>
public sealed class ChatPolicy : IDestinationPolicy
{
    public ValueTask<string?> CanSubscribeAsync(BrokerPrincipal user, string destination) =>
        ValueTask.FromResult(ChatAccess.CanSubscribe(user.UserId, ChatAccess.ParseRole(user.Role), destination));

    public ValueTask<string?> CanSendAsync(BrokerPrincipal user, string destination) =>
        ValueTask.FromResult(ChatAccess.CanSend(user.UserId, ChatAccess.ParseRole(user.Role), destination));
}
