using System.Buffers;
using System.Buffers.Binary;
using System.Net.WebSockets;
using System.Text;

namespace WsBroker.Broker.Transport;

/// <summary>Writes server frames (RFC 6455 §5.2): never masked, never fragmented.</summary>
internal static class WebSocketFrameWriter
{
    /// <summary>Longest server header: 2 bytes and a 64-bit length.</summary>
    public const int MaxHeaderLength = 10;

    /// <summary>Longest close reason: a control payload is at most 125 bytes, 2 of them the status.</summary>
    public const int MaxCloseReasonBytes = WebSocketFrameHeader.MaxControlPayload - 2;

    /// <summary>Writes one whole frame: header, then <paramref name="payload"/>.</summary>
    public static void Write(IBufferWriter<byte> output, WebSocketOpcode opcode, ReadOnlySpan<byte> payload)
    {
        var header = output.GetSpan(MaxHeaderLength);
        output.Advance(WriteHeader(header, opcode, payload.Length));
        output.Write(payload);
    }

    /// <summary>Writes a close frame with <paramref name="status"/> and a reason cut to what fits (at a code point).</summary>
    public static void WriteClose(IBufferWriter<byte> output, WebSocketCloseStatus status, string? reason)
    {
        Span<byte> payload = stackalloc byte[WebSocketFrameHeader.MaxControlPayload];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)status);
        var length = 2;
        if (!string.IsNullOrEmpty(reason))
        {
            Utf8ReasonFits(reason, payload[2..], out var written);
            length += written;
        }
        Write(output, WebSocketOpcode.Close, payload[..length]);
    }

    /// <summary>The header of a final frame of <paramref name="length"/> bytes; returns its size.</summary>
    public static int WriteHeader(Span<byte> destination, WebSocketOpcode opcode, long length)
    {
        destination[0] = (byte)(0x80 | (byte)opcode);                 // FIN, no reserved bit
        if (length <= 125)
        {
            destination[1] = (byte)length;
            return 2;
        }
        if (length <= ushort.MaxValue)
        {
            destination[1] = 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)length);
            return 4;
        }
        destination[1] = 127;
        BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)length);
        return 10;
    }

    private static void Utf8ReasonFits(string reason, Span<byte> destination, out int written)
    {
        // Encodes whole characters only: a reason cut inside a code point would be invalid UTF-8 (a 1007 at the client).
        Encoding.UTF8.GetEncoder().Convert(reason, destination[..MaxCloseReasonBytes], flush: true, out _, out written, out _);
    }
}
