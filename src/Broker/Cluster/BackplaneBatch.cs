using System.Buffers;
using System.Buffers.Binary;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker.Cluster;

/// <summary>
/// The body of one AMQP message on the backplane: a version byte, the origin node id (2 bytes), then each message as a
/// 4-byte length and its <see cref="SharedMessage.WriteWire"/> bytes. Little-endian. The origin lets a node drop its own
/// echo without reading the messages.
/// </summary>
public static class BackplaneBatch
{
    private const byte Version = 1;
    public const int HeaderBytes = 3;

    public static void WriteHeader(IBufferWriter<byte> output, int originNode)
    {
        var span = output.GetSpan(HeaderBytes);
        span[0] = Version;
        BinaryPrimitives.WriteUInt16LittleEndian(span[1..], checked((ushort)originNode));
        output.Advance(HeaderBytes);
    }

    /// <summary>Appends one message: its length is patched in after the wire bytes are written.</summary>
    public static void Append(ArrayBufferWriter<byte> output, SharedMessage message)
    {
        var at = output.WrittenCount;
        output.GetSpan(4);
        output.Advance(4);
        message.WriteWire(output);
        var length = output.WrittenCount - at - 4;
        BinaryPrimitives.WriteInt32LittleEndian(System.Runtime.InteropServices.MemoryMarshal.AsMemory(output.WrittenMemory).Span[at..], length);
    }

    /// <summary>The origin node of a batch; false for bytes that are not a batch of this version.</summary>
    public static bool TryReadOrigin(ReadOnlySpan<byte> batch, out int originNode)
    {
        originNode = -1;
        if (batch.Length < HeaderBytes || batch[0] != Version) return false;
        originNode = BinaryPrimitives.ReadUInt16LittleEndian(batch[1..]);
        return true;
    }

    /// <summary>Reads every message of a batch in order; false at the first one that does not read (the ones before it
    /// were handed to <paramref name="onMessage"/>).</summary>
    public static bool TryRead(ReadOnlySpan<byte> batch, Action<SharedMessage> onMessage)
    {
        if (!TryReadOrigin(batch, out _)) return false;
        var rest = batch[HeaderBytes..];
        while (!rest.IsEmpty)
        {
            if (rest.Length < 4) return false;
            var length = BinaryPrimitives.ReadInt32LittleEndian(rest);
            if (length < 0 || length > rest.Length - 4 || !SharedMessage.TryReadWire(rest.Slice(4, length), out var message)) return false;
            onMessage(message);
            rest = rest[(4 + length)..];
        }
        return true;
    }
}
