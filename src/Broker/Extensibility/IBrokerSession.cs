using WsBroker.Broker.Auth;

namespace WsBroker.Broker.Extensibility;

/// <summary>What handlers may do with a session.</summary>
public interface IBrokerSession
{
    string SessionId { get; }
    BrokerPrincipal? Principal { get; }
    void SendReceipt(string receiptId);
    void SendUserError(string message, string? receiptId);
}
