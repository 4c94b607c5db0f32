using System.Buffers.Binary;
using System.Net.WebSockets;
using System.Text.Unicode;

namespace WsBroker.Broker.Transport;

/// <summary>The payload of a client's close frame (RFC 6455 §5.5.1): empty, or a status code and a UTF-8 reason.</summary>
internal static class WebSocketCloseFrame
{
    /// <summary>The status (null: none given) or what is wrong: 1002 for a one-byte payload or a status no endpoint may
    /// send, 1007 for a reason that is not UTF-8.</summary>
    public static (WebSocketCloseStatus? Status, WebSocketCloseStatus? Error) Read(ReadOnlySpan<byte> payload)
    {
        if (payload.IsEmpty) return (null, null);
        if (payload.Length == 1) return (null, WebSocketCloseStatus.ProtocolError);
        var code = BinaryPrimitives.ReadUInt16BigEndian(payload);
        if (!IsSendable(code)) return (null, WebSocketCloseStatus.ProtocolError);
        if (!Utf8.IsValid(payload[2..])) return (null, WebSocketCloseStatus.InvalidPayloadData);
        return ((WebSocketCloseStatus)code, null);
    }

    /// <summary>§7.4: 1000-1003 and 1007-1011 (and 1012-1014, registered since), 3000-3999 for libraries, 4000-4999
    /// private. Never on the wire: under 1000, 1004 (reserved), 1005 and 1006 (no status, abnormal), 1015 (TLS), and the
    /// unassigned rest of 1016-2999.</summary>
    public static bool IsSendable(int code) => code is >= 1000 and <= 1003 or >= 1007 and <= 1014 or >= 3000 and <= 4999;
}
