namespace WsBroker.Broker.Routing;

/// <summary>The single-node backplane: every message goes straight to this node's subscribers.</summary>
public sealed class InProcessBackplane(LocalDelivery local, TopicRouter router) : IBackplane
{
    public void Publish(SharedMessage message) => local.Deliver(message);

    public bool HasSubscribers(string destination) => router.Match(destination).Length > 0;

    /// <summary>Never raised: one process has no other node to miss.</summary>
    public event Action? Resumed
    {
        add { }
        remove { }
    }
}
