using System.Buffers;
using System.Buffers.Binary;
using System.Net.WebSockets;

namespace WsBroker.Broker.Transport;

/// <summary>
/// The header of one client frame, RFC 6455 §5.2:
/// <code>
///  byte 0: FIN | RSV1 | RSV2 | RSV3 | opcode (4 bits)
///  byte 1: MASK | payload length (7 bits): 0-125 the length; 126: a 16-bit length follows; 127: a 64-bit length follows
///  then the extended length (network byte order), then the 4-byte masking key (client frames are always masked)
/// </code>
/// <see cref="TryRead"/> checks what a frame alone can break (the rules that need earlier frames, such as a continuation
/// without a start, are the reader's): no reserved bit (no extension is negotiated), no reserved opcode, the mask set, the
/// 64-bit length's most significant bit clear, and control frames unfragmented and at most 125 bytes. Each answers 1002.
/// </summary>
internal readonly record struct WebSocketFrameHeader(bool Fin, WebSocketOpcode Opcode, long PayloadLength, uint Mask, int Length)
{
    /// <summary>Largest payload of a control frame (RFC 6455 §5.5).</summary>
    public const int MaxControlPayload = 125;

    /// <summary>Longest header: 2 bytes, a 64-bit length and the masking key.</summary>
    public const int MaxLength = 14;

    public bool IsControl => ((byte)Opcode & 0x8) != 0;

    /// <summary>Reads a header from the start of <paramref name="buffer"/>. Done: <paramref name="header"/> is set;
    /// NeedMoreData: too few bytes so far, none of them wrong; InvalidData: <paramref name="error"/> is the close status.</summary>
    public static OperationStatus TryRead(ReadOnlySequence<byte> buffer, out WebSocketFrameHeader header, out WebSocketCloseStatus error)
    {
        header = default;
        error = default;
        Span<byte> bytes = stackalloc byte[MaxLength];
        var available = (int)Math.Min(buffer.Length, MaxLength);
        buffer.Slice(0, available).CopyTo(bytes);
        if (available < 2) return OperationStatus.NeedMoreData;
        var first = bytes[0];
        var second = bytes[1];
        var opcode = (WebSocketOpcode)(first & 0x0F);
        var fin = (first & 0x80) != 0;
        if ((first & 0x70) != 0 || !IsKnown(opcode) || (second & 0x80) == 0) return Invalid(out error);
        var isControl = ((byte)opcode & 0x8) != 0;
        var length7 = second & 0x7F;
        if (isControl && (!fin || length7 > MaxControlPayload)) return Invalid(out error);
        var lengthBytes = length7 switch { 126 => 2, 127 => 8, _ => 0 };
        var headerLength = 2 + lengthBytes + 4;
        if (length7 == 127 && available >= 3 && (bytes[2] & 0x80) != 0) return Invalid(out error);   // §5.2: MSB must be 0
        if (available < headerLength) return OperationStatus.NeedMoreData;
        long length = lengthBytes switch
        {
            2 => BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]),
            8 => (long)BinaryPrimitives.ReadUInt64BigEndian(bytes[2..]),
            _ => length7,
        };
        // The key as it lies in memory: byte k of the key is bits 8k..8k+7 (WebSocketMask applies it in that order).
        var mask = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(2 + lengthBytes)..]);
        header = new WebSocketFrameHeader(fin, opcode, length, mask, headerLength);
        return OperationStatus.Done;
    }

    private static bool IsKnown(WebSocketOpcode opcode) => opcode is WebSocketOpcode.Continuation or WebSocketOpcode.Text
        or WebSocketOpcode.Binary or WebSocketOpcode.Close or WebSocketOpcode.Ping or WebSocketOpcode.Pong;

    private static OperationStatus Invalid(out WebSocketCloseStatus error)
    {
        error = WebSocketCloseStatus.ProtocolError;
        return OperationStatus.InvalidData;
    }
}
