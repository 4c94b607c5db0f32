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

/// <summary>Wire names and rules of <see cref="StompCommand"/>.</summary>
public static class StompCommands
{
    /// <summary>Parses a command line (without its EOL). Case-sensitive, as the STOMP grammar is.</summary>
    public static bool TryParse(ReadOnlySpan<byte> name, out StompCommand command)
    {
        command = name.Length switch
        {
            3 when name.SequenceEqual("ACK"u8) => StompCommand.Ack,
            4 when name.SequenceEqual("SEND"u8) => StompCommand.Send,
            4 when name.SequenceEqual("NACK"u8) => StompCommand.Nack,
            5 when name.SequenceEqual("STOMP"u8) => StompCommand.Stomp,
            5 when name.SequenceEqual("BEGIN"u8) => StompCommand.Begin,
            5 when name.SequenceEqual("ABORT"u8) => StompCommand.Abort,
            5 when name.SequenceEqual("ERROR"u8) => StompCommand.Error,
            6 when name.SequenceEqual("COMMIT"u8) => StompCommand.Commit,
            7 when name.SequenceEqual("CONNECT"u8) => StompCommand.Connect,
            7 when name.SequenceEqual("MESSAGE"u8) => StompCommand.Message,
            7 when name.SequenceEqual("RECEIPT"u8) => StompCommand.Receipt,
            9 when name.SequenceEqual("SUBSCRIBE"u8) => StompCommand.Subscribe,
            9 when name.SequenceEqual("CONNECTED"u8) => StompCommand.Connected,
            10 when name.SequenceEqual("DISCONNECT"u8) => StompCommand.Disconnect,
            11 when name.SequenceEqual("UNSUBSCRIBE"u8) => StompCommand.Unsubscribe,
            _ => StompCommand.None,
        };
        return command != StompCommand.None;
    }

    /// <summary>The wire name of a command as UTF-8 bytes (empty for <see cref="StompCommand.None"/>).</summary>
    public static ReadOnlySpan<byte> GetName(StompCommand command) => command switch
    {
        StompCommand.Connect => "CONNECT"u8,
        StompCommand.Stomp => "STOMP"u8,
        StompCommand.Send => "SEND"u8,
        StompCommand.Subscribe => "SUBSCRIBE"u8,
        StompCommand.Unsubscribe => "UNSUBSCRIBE"u8,
        StompCommand.Ack => "ACK"u8,
        StompCommand.Nack => "NACK"u8,
        StompCommand.Begin => "BEGIN"u8,
        StompCommand.Commit => "COMMIT"u8,
        StompCommand.Abort => "ABORT"u8,
        StompCommand.Disconnect => "DISCONNECT"u8,
        StompCommand.Connected => "CONNECTED"u8,
        StompCommand.Message => "MESSAGE"u8,
        StompCommand.Receipt => "RECEIPT"u8,
        StompCommand.Error => "ERROR"u8,
        _ => [],
    };

    /// <summary>The wire name of a command.</summary>
    public static string ToWireString(this StompCommand command) => System.Text.Encoding.ASCII.GetString(GetName(command));

    /// <summary>True for frames a client sends to a server.</summary>
    public static bool IsClientCommand(this StompCommand command) => command is >= StompCommand.Connect and <= StompCommand.Disconnect;

    /// <summary>True for frames a server sends to a client.</summary>
    public static bool IsServerCommand(this StompCommand command) => command is >= StompCommand.Connected and <= StompCommand.Error;

    /// <summary>STOMP 1.2: "The CONNECT and CONNECTED frames do not escape the carriage return, line feed or colon octets".</summary>
    public static bool UsesHeaderEscaping(this StompCommand command) => command is not (StompCommand.Connect or StompCommand.Connected);

    /// <summary>STOMP 1.2: "Only the SEND, MESSAGE, and ERROR frames MAY have a body. All other frames MUST NOT have a body."</summary>
    public static bool MayHaveBody(this StompCommand command) => command is StompCommand.Send or StompCommand.Message or StompCommand.Error;
}
