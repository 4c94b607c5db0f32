namespace WsBroker.Broker.Options;

/// <summary>Which WebSocket implementation carries the sessions (<c>Broker:Transport</c>).</summary>
public enum BrokerTransport
{
    /// <summary>ASP.NET Core's WebSocket middleware on the HTTP pipeline (<c>WebSocketTransport</c>).</summary>
    AspNetCore,
    /// <summary>RFC 6455 on Kestrel's connection layer, over the connection's own pipes (<c>PipeWebSocketTransport</c>).</summary>
    Pipeline,
}
