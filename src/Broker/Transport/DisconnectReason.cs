namespace WsBroker.Broker.Transport;

/// <summary>Why a connection ended; logged once per connection.</summary>
public enum DisconnectReason
{
    ClientClosed,
    ProtocolError,
    AuthenticationFailed,
    SlowConsumer,
    HeartbeatTimeout,
    ConnectTimeout,
    ServerShutdown,
    UserDeleted,
    TransportError,
}
