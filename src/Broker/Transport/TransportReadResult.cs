using System.Buffers;

namespace WsBroker.Broker.Transport;

/// <summary>What <see cref="IConnectionTransport.ReadAsync"/> returns: the unconsumed payload bytes, whether the last of them
/// ends a client message, and whether the client has gone (then <see cref="Buffer"/> is empty).</summary>
public readonly record struct TransportReadResult(ReadOnlySequence<byte> Buffer, bool EndOfMessage, bool IsCompleted)
{
    /// <summary>The client closed the connection.</summary>
    public static TransportReadResult Completed => new(ReadOnlySequence<byte>.Empty, EndOfMessage: true, IsCompleted: true);
}
