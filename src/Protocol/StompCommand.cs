namespace WsBroker.Protocol;

/// <summary>Every STOMP 1.2 command, client and server.</summary>
public enum StompCommand : byte
{
    None = 0,
    Connect,
    Stomp,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    Connected,
    Message,
    Receipt,
    Error,
}
