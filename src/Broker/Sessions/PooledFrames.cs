using System.Buffers;

namespace WsBroker.Broker.Sessions;

/// <summary>The per-thread scratch buffer small reply frames are written into before they are copied into a pooled array
/// (a receipt, a user error): no allocation once warm.</summary>
internal static class PooledFrames
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_scratch;

    public static ArrayBufferWriter<byte> Scratch()
    {
        var scratch = t_scratch ??= new ArrayBufferWriter<byte>(256);
        scratch.ResetWrittenCount();
        return scratch;
    }
}
