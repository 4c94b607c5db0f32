using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;

namespace WsBroker.Load;

/// <summary>
/// --client lean: the tool's own HTTP/1.1 upgrade (RFC 6455 section 4.1) on a plain socket, then .NET's WebSocket framing
/// over it (<see cref="WebSocket.CreateFromStream(Stream, WebSocketCreationOptions)"/>, the same framing ClientWebSocket
/// uses). ClientWebSocket upgrades through SocketsHttpHandler (a request message, header collections, a connection pool),
/// which made the tool, not the broker, the larger part of a connection's cost: at 19,000 connections the tool spent about
/// 0.9 ms of CPU per connection to the broker's 0.4 (docs/performance.md, issue 17). Here a connection costs the tool one
/// request written and one response read. The response is checked as a client must: status 101, Upgrade and Connection,
/// Sec-WebSocket-Accept for the key sent, and a subprotocol only if one was asked for.
/// </summary>
internal static class LeanWebSocket
{
    private const int MaxResponseBytes = 8 * 1024;
    private static readonly byte[] s_endOfHead = "\r\n\r\n"u8.ToArray();

    /// <summary>Connects to <paramref name="url"/> (ws:// only) from <paramref name="source"/> (null: the system's choice)
    /// and upgrades. A refused upgrade is a <see cref="WebSocketException"/> naming the status line.</summary>
    public static async Task<WebSocket> ConnectAsync(Uri url, string? subProtocol, IPAddress? source, CancellationToken cancellationToken)
    {
        if (url.Scheme != "ws") throw new WebSocketException(WebSocketError.Faulted, $"--client lean speaks ws:// only, not {url.Scheme}://");
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null) SourceAddresses.Bind(socket, source);
            var address = IPAddress.TryParse(url.Host, out var ip) ? ip
                : (await Dns.GetHostAddressesAsync(url.Host, AddressFamily.InterNetwork, cancellationToken))[0];
            await socket.ConnectAsync(new IPEndPoint(address, url.Port), cancellationToken);
            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            var request = new StringBuilder()
                .Append("GET ").Append(url.PathAndQuery).Append(" HTTP/1.1\r\n")
                .Append("Host: ").Append(url.Authority).Append("\r\n")
                .Append("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
                .Append("Sec-WebSocket-Key: ").Append(key).Append("\r\n");
            if (subProtocol is not null) request.Append("Sec-WebSocket-Protocol: ").Append(subProtocol).Append("\r\n");
            await socket.SendAsync(Encoding.ASCII.GetBytes(request.Append("\r\n").ToString()), SocketFlags.None, cancellationToken);
            var (head, trailing) = await ReadHeadAsync(socket, cancellationToken);
            var accepted = Check(head, key, subProtocol);
            // A STOMP server says nothing after the upgrade until the client's CONNECT, so a byte past a 101's head is a
            // broken server, not a frame to keep. (A refusal's body is expected: Check named its status first.)
            if (trailing) throw new WebSocketException(WebSocketError.HeaderError, "the server sent bytes after its upgrade response before the client spoke");
            return WebSocket.CreateFromStream(new NetworkStream(socket, ownsSocket: true),
                new WebSocketCreationOptions { IsServer = false, SubProtocol = accepted, KeepAliveInterval = TimeSpan.Zero });
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Reads the response head, up to its empty line; whether more bytes came with it.</summary>
    private static async Task<(string Head, bool Trailing)> ReadHeadAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxResponseBytes);
        try
        {
            var length = 0;
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer.AsMemory(length, MaxResponseBytes - length), SocketFlags.None, cancellationToken);
                if (read == 0) throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the server closed the connection during the upgrade");
                length += read;
                var end = buffer.AsSpan(0, length).IndexOf(s_endOfHead);
                if (end >= 0) return (Encoding.ASCII.GetString(buffer, 0, end), end + s_endOfHead.Length != length);
                if (length == MaxResponseBytes) throw new WebSocketException(WebSocketError.HeaderError, $"the upgrade response's head is over {MaxResponseBytes} bytes");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Checks the response head; returns the accepted subprotocol (null: none).</summary>
    internal static string? Check(string head, string key, string? subProtocol)
    {
        var lines = head.Split("\r\n");
        var status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || status[1] != "101")
            throw new WebSocketException(WebSocketError.NotAWebSocket, $"the server answered the upgrade with '{lines[0]}', not 101");
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.AsSpan(1))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) throw new WebSocketException(WebSocketError.HeaderError, $"bad header line in the upgrade response: '{line}'");
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        if (!headers.TryGetValue("Upgrade", out var upgrade) || !upgrade.Equals("websocket", StringComparison.OrdinalIgnoreCase))
            throw new WebSocketException(WebSocketError.HeaderError, "the upgrade response has no 'Upgrade: websocket'");
        if (!headers.TryGetValue("Connection", out var connection)
            || !connection.Split(',').Any(t => t.Trim().Equals("Upgrade", StringComparison.OrdinalIgnoreCase)))
            throw new WebSocketException(WebSocketError.HeaderError, "the upgrade response has no 'Connection: Upgrade'");
        var expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
        if (!headers.TryGetValue("Sec-WebSocket-Accept", out var accept) || accept != expected)
            throw new WebSocketException(WebSocketError.HeaderError, "the upgrade response's Sec-WebSocket-Accept does not match the key sent");
        headers.TryGetValue("Sec-WebSocket-Protocol", out var accepted);
        if (accepted is not null && accepted != subProtocol)
            throw new WebSocketException(WebSocketError.UnsupportedProtocol, $"the server chose subprotocol '{accepted}', which was not asked for");
        return accepted;
    }
}
