using Microsoft.Extensions.Options;
using WsBroker.Broker.Destinations;
using WsBroker.Broker.Extensibility;
using WsBroker.Persistence;

namespace WsBroker.Broker.Chat;

/// <summary>Resumes a conversation subscription (or an admin's <c>/*</c>) with <c>since</c>: the committed messages after
/// that id, in id order, at most <c>Chat:MaxReplay</c>.</summary>
public sealed partial class ChatReplaySource(IMessageStore messages, IOptions<ChatOptions> options, ILogger<ChatReplaySource> logger) : IReplaySource
{
    public bool CanReplay(Destination destination) =>
        ChatDestination.Of(destination).Kind is ChatDestinationKind.Conversation or ChatDestinationKind.AdminConversations;

    public async Task<ReplayPage> ReplayAsync(Destination destination, long sinceId, CancellationToken cancellationToken)
    {
        var chat = ChatDestination.Of(destination);
        var max = options.Value.MaxReplay;
        try
        {
            var stored = await messages.GetAfterAsync(chat.AdminId!, chat.ClientId, sinceId, max + 1, cancellationToken);
            var page = stored.Count > max ? stored.Take(max) : stored;
            return new ReplayPage([.. page.Select(ChatMessages.Build)], stored.Count > max ? stored[max].Id : null);
        }
        catch (Exception ex) when (ex is PersistenceUnavailableException or System.Data.Common.DbException or TimeoutException)
        {
            Log.ReplayFailed(logger, ex, destination.Text);
            return new ReplayPage([], Error: "storage unavailable");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 620, Level = LogLevel.Warning, Message = "replay of {Destination} failed: storage unavailable")]
        public static partial void ReplayFailed(ILogger logger, Exception exception, string destination);
    }
}
