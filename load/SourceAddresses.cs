using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace WsBroker.Load;

/// <summary>
/// --source-addresses n: connections go round-robin over 127.0.0.1 .. 127.0.0.n, each socket bound to its source address
/// before it connects. A TCP connection is named by its four-tuple, so every source address brings its own range of
/// ephemeral ports (32768-60999 here) to the same broker port. One <see cref="HttpMessageInvoker"/> per source address,
/// shared by all its connections (ClientWebSocket upgrades through it; the upgraded connection leaves its pool); --client
/// lean binds its own socket to <see cref="NextAddress"/>.
/// </summary>
internal sealed class SourceAddresses
{
    private static readonly ConcurrentDictionary<int, SourceAddresses> s_byCount = new();
    private readonly IPAddress[] _addresses;
    private readonly HttpMessageInvoker[] _invokers;
    private int _next = -1;

    private SourceAddresses(int count)
    {
        _addresses = [.. Enumerable.Range(1, count).Select(k => new IPAddress([127, 0, 0, (byte)k]))];
        _invokers = [.. _addresses.Select(a => new HttpMessageInvoker(new SocketsHttpHandler
        {
            ConnectCallback = (context, ct) => ConnectFromAsync(a, context.DnsEndPoint, ct),
        }))];
    }

    /// <summary>The shared set of <paramref name="count"/> source addresses, or null for 1 (the system's choice, as ever).</summary>
    public static SourceAddresses? For(int count) => count <= 1 ? null : s_byCount.GetOrAdd(count, static n => new SourceAddresses(n));

    /// <summary>The invoker of the next source address, round-robin.</summary>
    public HttpMessageInvoker Next() => _invokers[(int)((uint)Interlocked.Increment(ref _next) % (uint)_invokers.Length)];

    /// <summary>The next source address, round-robin (one count with <see cref="Next"/>).</summary>
    public IPAddress NextAddress() => _addresses[(int)((uint)Interlocked.Increment(ref _next) % (uint)_addresses.Length)];

    /// <summary>Binds <paramref name="socket"/> to <paramref name="source"/> before it connects. IP_BIND_ADDRESS_NO_PORT:
    /// the port is chosen at connect, for the whole four-tuple, not reserved at bind for the source address alone.</summary>
    public static void Bind(Socket socket, IPAddress source)
    {
        if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
        socket.Bind(new IPEndPoint(source, 0));
    }

    private static async ValueTask<Stream> ConnectFromAsync(IPAddress source, DnsEndPoint target, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            Bind(socket, source);
            var address = IPAddress.TryParse(target.Host, out var ip) ? ip
                : (await Dns.GetHostAddressesAsync(target.Host, AddressFamily.InterNetwork, cancellationToken))[0];
            await socket.ConnectAsync(new IPEndPoint(address, target.Port), cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;
}
