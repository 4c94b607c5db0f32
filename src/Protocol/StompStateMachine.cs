namespace WsBroker.Protocol;

/// <summary>Where a connection is in the STOMP conversation.</summary>
public enum StompState : byte
{
    AwaitingConnect,
    Connected,
    Disconnected,
}

/// <summary>The answer of <see cref="StompStateMachine.Accept"/>: proceed, or reject with a client-safe message
/// (which the broker sends as ERROR and then closes).</summary>
public readonly record struct StompVerdict(bool IsAccepted, string? Error)
{
    public static StompVerdict Proceed() => new(true, null);

    public static StompVerdict Reject(string error) => new(false, error);
}

/// <summary>
/// The per-connection STOMP rules, apart from transport: frame in, verdict out, no I/O. Checks the frame order
/// (CONNECT first, once), version negotiation, heart-beat negotiation and the headers each command requires in the
/// negotiated version. The broker asks it first, then routes.
/// </summary>
public sealed class StompStateMachine
{
    private readonly StompHeartBeat _server;

    /// <param name="server">What the server offers: how often it can send heart-beats and how often it wants them.</param>
    public StompStateMachine(StompHeartBeat server) => _server = server;

    public StompState State { get; private set; } = StompState.AwaitingConnect;

    /// <summary>The negotiated version (1.2 until CONNECT is accepted).</summary>
    public StompVersion Version { get; private set; } = StompVersion.V1_2;

    /// <summary>The server's side of the negotiated heart-beat: send every <c>Send</c> ms, expect something at least every
    /// <c>Receive</c> ms; 0 = off. Valid once connected.</summary>
    public (int Send, int Receive) HeartBeat { get; private set; }

    /// <summary>The heart-beat header the server answers in CONNECTED.</summary>
    public StompHeartBeat ServerHeartBeat => _server;

    public StompVerdict Accept(in StompFrameView frame)
    {
        var command = frame.Command;
        if (command.IsServerCommand()) return StompVerdict.Reject($"{command.ToWireString()} is a server frame");
        return (State, command) switch
        {
            (StompState.AwaitingConnect, StompCommand.Connect or StompCommand.Stomp) => Connect(frame),
            (StompState.AwaitingConnect, _) => StompVerdict.Reject("expected CONNECT or STOMP frame"),
            (StompState.Connected, StompCommand.Connect or StompCommand.Stomp) => StompVerdict.Reject("already connected"),
            (StompState.Connected, StompCommand.Disconnect) => Disconnect(),
            (StompState.Connected, _) => CheckHeaders(frame),
            _ => StompVerdict.Reject("connection is closing"),
        };
    }

    private StompVerdict Connect(in StompFrameView frame)
    {
        var present = frame.TryGetHeader("accept-version"u8, out var accept);
        if (!StompVersions.TryNegotiate(accept, present, out var version))
            return StompVerdict.Reject($"unsupported protocol version; supported versions are {StompVersions.Supported}");
        var heartBeat = StompHeartBeat.None;
        if (frame.TryGetHeader("heart-beat"u8, out var hb) && !StompHeartBeat.TryParse(hb, out heartBeat))
            return StompVerdict.Reject("invalid heart-beat header");
        Version = version;
        HeartBeat = version == StompVersion.V1_0 ? (0, 0) : StompHeartBeat.Negotiate(heartBeat, _server);
        State = StompState.Connected;
        return StompVerdict.Proceed();
    }

    private StompVerdict Disconnect()
    {
        State = StompState.Disconnected;
        return StompVerdict.Proceed();
    }

    private StompVerdict CheckHeaders(in StompFrameView frame)
    {
        var v10 = Version == StompVersion.V1_0;
        var v12 = Version == StompVersion.V1_2;
        switch (frame.Command)
        {
            case StompCommand.Send:
                return Require(frame, "destination"u8, "SEND frame has no destination header");
            case StompCommand.Subscribe:
                if (!frame.TryGetHeader("destination"u8, out var destination) || destination.IsEmpty)
                    return StompVerdict.Reject("SUBSCRIBE frame has no destination header");
                if (!v10 && !frame.HasHeader("id"u8)) return StompVerdict.Reject("SUBSCRIBE frame has no id header");
                if (frame.TryGetHeader("ack"u8, out var ack) && !ack.SequenceEqual("auto"u8) && !ack.SequenceEqual("client"u8)
                    && !(ack.SequenceEqual("client-individual"u8) && !v10))
                    return StompVerdict.Reject("invalid ack header; use auto, client or client-individual");
                return StompVerdict.Proceed();
            case StompCommand.Unsubscribe:
                if (v10 && (frame.HasHeader("id"u8) || frame.HasHeader("destination"u8))) return StompVerdict.Proceed();
                return Require(frame, "id"u8, "UNSUBSCRIBE frame has no id header");
            case StompCommand.Ack or StompCommand.Nack:
                if (frame.Command == StompCommand.Nack && v10) return StompVerdict.Reject("NACK is not part of STOMP 1.0");
                if (v12) return Require(frame, "id"u8);
                var verdict = Require(frame, "message-id"u8);
                return !verdict.IsAccepted || v10 ? verdict : Require(frame, "subscription"u8);
            case StompCommand.Begin or StompCommand.Commit or StompCommand.Abort:
                return Require(frame, "transaction"u8);
            default:
                return StompVerdict.Proceed();
        }
    }

    private static StompVerdict Require(in StompFrameView frame, ReadOnlySpan<byte> header, string? error = null) =>
        frame.TryGetHeader(header, out var value) && !value.IsEmpty ? StompVerdict.Proceed()
        : StompVerdict.Reject(error ?? $"{frame.Command.ToWireString()} frame has no {System.Text.Encoding.ASCII.GetString(header)} header");
}
