using WsBroker.Broker.Auth;

namespace WsBroker.Broker.Extensibility;

/// <summary>What handlers may do with a session.</summary>
public interface IBrokerSession
{
    string SessionId { get; }
    BrokerPrincipal? Principal { get; }
    /// <summary>Answers a frame's receipt; <paramref name="messageId"/> (a stored message's id) goes in its
    /// <c>message-id</c> header.</summary>
    void SendReceipt(string receiptId, long? messageId = null);
    void SendUserError(string message, string? receiptId);
}
