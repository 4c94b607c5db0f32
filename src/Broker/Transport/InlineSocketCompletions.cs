using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace WsBroker.Broker.Transport;

/// <summary>
/// <c>Broker:InlineSocketCompletions</c>: the socket of an upgraded WebSocket connection has its reads and writes completed
/// on the runtime's socket event thread instead of a thread-pool worker (the per-socket form of
/// <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c>, which would put every socket of the process there: the database's,
/// the bus's, the HTTP layer's). A heart-beat then costs no worker wake-up: the event thread reads it, the session's clock
/// notes it, and the read is pending again. Everything else leaves the event thread before it is handled
/// (<see cref="OnEventThread"/>): the pump hops to the thread pool before any frame that is not heart-beats, the writer after
/// a send that had to wait, so nothing the broker does for a client can hold up the event thread.
/// </summary>
internal static class InlineSocketCompletions
{
    private static volatile bool s_unavailable;

    /// <summary>True on a thread that is not the thread pool's: the socket event thread, after an inline completion. Code
    /// that may block, allocate much or run long hops off it first (<c>await Task.Yield()</c>).</summary>
    public static bool OnEventThread => !Thread.CurrentThread.IsThreadPoolThread;

    /// <summary>Turns inline completions on for the connection's socket; false when the connection has no socket (a test
    /// transport, a Unix socket's feature missing) or the runtime lacks the per-socket switch, which is then not asked again.</summary>
    public static bool TryEnable(ConnectionContext connection) =>
        connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket && TryEnable(socket);

    public static bool TryEnable(Socket socket)
    {
        if (s_unavailable) return false;
        try
        {
            SetPreferInlineCompletions(socket, true);
            return true;
        }
        catch (MissingMethodException)
        {
            s_unavailable = true;                                   // a runtime without Socket.PreferInlineCompletions
            return false;
        }
    }

    // System.Net.Sockets' internal per-socket switch (Socket.PreferInlineCompletions, stored on its SafeSocketHandle and read
    // by the event loop for every event of the socket). Checked against the running runtime by InlineSocketCompletionsTests.
    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "set_PreferInlineCompletions")]
    private static extern void SetPreferInlineCompletions(Socket socket, bool value);
}
