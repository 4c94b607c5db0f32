namespace WsBroker.Broker.Transport;

/// <summary>
/// What a session sees of its connection (cf. MQTTnet's channel adapter, SignalR's <c>IDuplexPipe</c>): the payload bytes
/// of the client's messages as one stream, whole messages out, and the close. Implementations: <see cref="PipeWebSocketTransport"/>
/// (RFC 6455 over Kestrel's connection pipes, its buffers read in place), <see cref="WebSocketTransport"/> (ASP.NET Core's
/// <see cref="System.Net.WebSockets.WebSocket"/>), and <see cref="InMemoryTransport"/> for tests and benchmarks. Sessions never
/// touch sockets; an idle connection holds no buffer, only its one pending read.
/// </summary>
public interface IConnectionTransport
{
    /// <summary>Waits for the client's bytes and returns every unconsumed payload byte: what the last read left, then new
    /// bytes (a read always brings new ones). The buffer is valid until <see cref="AdvanceTo"/>, which must follow every read
    /// that is not completed.</summary>
    ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken);

    /// <summary>A pipe the pump may wait on itself before <see cref="ReadAsync"/>, which then finds the bytes without waiting:
    /// a transport that reads its connection's pipe in place offers it, so that a session waiting for its client holds no
    /// async frame of the transport (256 bytes of every idle connection). Null: <see cref="ReadAsync"/> waits.</summary>
    System.IO.Pipelines.PipeReader? Waitable => null;

    /// <summary>Consumes the bytes of the last read before <paramref name="consumed"/> (a position in its buffer); the rest
    /// comes again, first, in the next read.</summary>
    void AdvanceTo(SequencePosition consumed);

    /// <summary>Sends one message (one WebSocket message). Called by the session's one writer loop only.</summary>
    ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken);

    /// <summary>Sends a small text message at once, on the caller's thread, if no other send is under way and the connection
    /// takes it without waiting; false (nothing sent) otherwise, and the caller queues it for the writer loop instead. The
    /// heart-beat scanner sends due heart-beats so, thousands in one pass, with no wake-up of a writer loop each.</summary>
    bool TrySendNow(ReadOnlySpan<byte> message) => false;

    /// <summary>Starts the close handshake with a status that says why (after everything sent).</summary>
    ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken);

    /// <summary>After the session, the transport's last word: the pipeline transport waits, at most
    /// <paramref name="timeout"/>, for the client's reply to the broker's close (so that closing the socket does not reset
    /// a connection whose last bytes are still unread) and releases what it holds. Others: nothing.</summary>
    Task FinishAsync(TimeSpan timeout) => Task.CompletedTask;

    /// <summary>Drops the connection now.</summary>
    void Abort();

    /// <summary>Called for every session on each tick of the broker's one heart-beat scanner (<c>HeartBeatScanner</c>,
    /// <paramref name="nowMs"/> on <see cref="Environment.TickCount64"/>): a transport with a keep-alive of its own (a raw
    /// topic URL's pings on <see cref="PipeWebSocketTransport"/>) sends a due ping or drops a silent client here, so that no
    /// connection owns a timer. Others do nothing.</summary>
    void KeepAlive(long nowMs);
}
