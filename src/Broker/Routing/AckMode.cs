namespace WsBroker.Broker.Routing;

/// <summary>How deliveries on a subscription are acknowledged (STOMP 1.2 SUBSCRIBE <c>ack</c> header).</summary>
public enum AckMode : byte
{
    Auto,
    Client,
    ClientIndividual,
}
