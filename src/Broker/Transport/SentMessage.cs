namespace WsBroker.Broker.Transport;

/// <summary>One message a session sent through an <see cref="InMemoryTransport"/>.</summary>
public readonly record struct SentMessage(byte[] Payload, bool Binary)
{
    public string Text => System.Text.Encoding.UTF8.GetString(Payload);
}
