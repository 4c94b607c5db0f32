using System.Buffers.Binary;
using System.Numerics;

namespace WsBroker.Broker.Transport;

/// <summary>RFC 6455 §5.3 masking: payload byte i is XORed with key byte i mod 4. Masking and unmasking are the same.</summary>
internal static class WebSocketMask
{
    /// <summary>Applies <paramref name="mask"/> (key byte k in bits 8k..8k+7) in place to <paramref name="data"/>, whose first
    /// byte is payload byte number <paramref name="phase"/> mod 4; returns the phase of the byte after it.</summary>
    public static int Apply(Span<byte> data, uint mask, int phase)
    {
        var rotated = BitOperations.RotateRight(mask, 8 * phase);        // key byte `phase` first
        var wide = rotated | ((ulong)rotated << 32);
        var i = 0;
        for (; i + 8 <= data.Length; i += 8)                              // 8 bytes keep the phase (8 mod 4 = 0)
        {
            var chunk = data.Slice(i, 8);
            BinaryPrimitives.WriteUInt64LittleEndian(chunk, BinaryPrimitives.ReadUInt64LittleEndian(chunk) ^ wide);
        }
        for (; i < data.Length; i++) data[i] ^= (byte)(rotated >> (8 * (i & 3)));
        return (phase + data.Length) & 3;
    }
}
