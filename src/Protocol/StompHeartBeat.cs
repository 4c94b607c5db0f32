using System.Buffers.Text;

namespace WsBroker.Protocol;

/// <summary>A <c>heart-beat</c> header: <see cref="Outgoing"/> is the smallest interval (ms) at which the sender can send
/// heart-beats, <see cref="Incoming"/> the interval at which it wants to receive them; 0 means "cannot" / "does not want".</summary>
public readonly record struct StompHeartBeat(int Outgoing, int Incoming)
{
    /// <summary>No heart-beats either way (also what a missing header means).</summary>
    public static StompHeartBeat None => default;

    private static bool IsDigits(ReadOnlySpan<byte> text) => !text.IsEmpty && !text.ContainsAnyExceptInRange((byte)'0', (byte)'9');

    /// <summary>Parses "cx,cy": two non-negative integers in plain digits (no sign). Spaces around them are tolerated.</summary>
    public static bool TryParse(ReadOnlySpan<byte> value, out StompHeartBeat heartBeat)
    {
        heartBeat = default;
        var comma = value.IndexOf((byte)',');
        if (comma < 0) return false;
        var first = value[..comma].Trim((byte)' ');
        var rest = value[(comma + 1)..].Trim((byte)' ');
        if (!IsDigits(first) || !IsDigits(rest)) return false;
        if (!Utf8Parser.TryParse(first, out int outgoing, out var used1) || used1 != first.Length) return false;
        if (!Utf8Parser.TryParse(rest, out int incoming, out var used2) || used2 != rest.Length) return false;
        heartBeat = new StompHeartBeat(outgoing, incoming);
        return true;
    }

    /// <summary>STOMP 1.2 "Heart-beating": given the client's header and what the server offers, how often the server
    /// must send (<c>send</c>) and the longest silence it should expect from the client (<c>receive</c>), in ms; 0 = none.</summary>
    public static (int Send, int Receive) Negotiate(StompHeartBeat client, StompHeartBeat server)
    {
        var send = client.Incoming == 0 || server.Outgoing == 0 ? 0 : Math.Max(client.Incoming, server.Outgoing);
        var receive = client.Outgoing == 0 || server.Incoming == 0 ? 0 : Math.Max(client.Outgoing, server.Incoming);
        return (send, receive);
    }

    /// <summary>The header form, "cx,cy".</summary>
    public override string ToString() => $"{Outgoing},{Incoming}";
}
