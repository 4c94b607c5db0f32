using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using WsBroker.Protocol;

namespace WsBroker.Load;

/// <summary>
/// One STOMP-over-WebSocket connection of the load generator: CONNECT (JWT or login/passcode), SUBSCRIBE, SEND with a
/// timestamp in the body, and a receive loop that parses with the zero-allocation <see cref="StompFrameParser"/>.
/// Sends are serialised (a WebSocket takes one send at a time); receives run on their own loop. With --heart-beat the
/// process's one heart-beat timer (<see cref="HeartBeats"/>) sends an EOL whenever the connection has sent nothing for the
/// negotiated interval; the broker's heart-beats are EOLs that the parser skips between frames.
/// </summary>
public sealed class LoadConnection : IAsyncDisposable
{
    private readonly WebSocket _socket;
    private readonly StompFrameParser _parser = new(new StompLimits { MaxFrameBytes = 2 * 1024 * 1024, MaxBodyBytes = 2 * 1024 * 1024 });
    private readonly SemaphoreSlim _sendGate = new(1, 1);
    private readonly ArrayBufferWriter<byte> _sendBuffer = new(512);
    // Grows (doubling) when a frame does not fit: an idle connection of a 19,000-connection run keeps this small.
    private byte[] _receive = new byte[4 * 1024];
    private int _received;
    private long _lastSentMs = Environment.TickCount64;
    private int _heartBeatsReceived;

    private LoadConnection(WebSocket socket) => _socket = socket;

    public string? Session { get; private set; }
    public bool IsOpen => _socket.State == WebSocketState.Open;
    /// <summary>The negotiated interval at which this side sends heart-beats (ms; 0: none).</summary>
    public int HeartBeatSendMs { get; private set; }
    /// <summary>The broker closed the connection (a close frame, or the socket dropped) while a receive loop read it.</summary>
    public bool ClosedByBroker { get; private set; }
    /// <summary>WebSocket messages from the broker that held nothing but EOLs: its heart-beats.</summary>
    public int HeartBeatsReceived => Volatile.Read(ref _heartBeatsReceived);

    public static Task<LoadConnection> ConnectAsync(LoadOptions options, string? token, CancellationToken cancellationToken) =>
        ConnectAsync(options, options.Url, token, cancellationToken);

    /// <summary>Connects to <paramref name="url"/> (one of <see cref="LoadOptions.Urls"/>) with the options' credentials.</summary>
    public static async Task<LoadConnection> ConnectAsync(LoadOptions options, Uri url, string? token, CancellationToken cancellationToken)
    {
        if (token is not null) url = new Uri(url + (url.Query.Length > 0 ? "&" : "?") + "access_token=" + Uri.EscapeDataString(token));
        var sources = SourceAddresses.For(options.SourceAddresses);
        WebSocket socket;
        if (options.LeanClient) socket = await LeanWebSocket.ConnectAsync(url, options.SubProtocol, sources?.NextAddress(), cancellationToken);
        else
        {
            var client = new ClientWebSocket();
            client.Options.AddSubProtocol(options.SubProtocol);
            client.Options.KeepAliveInterval = TimeSpan.Zero;
            try
            {
                if (sources is not null) await client.ConnectAsync(url, sources.Next(), cancellationToken);
                else await client.ConnectAsync(url, cancellationToken);
            }
            catch
            {
                client.Dispose();
                throw;
            }
            socket = client;
        }
        var connection = new LoadConnection(socket);
        try
        {
            var connect = new StringBuilder("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:").Append(options.HeartBeat.ToString()).Append('\n');
            if (options.Login is not null) connect.Append("login:").Append(options.Login).Append("\npasscode:").Append(options.Passcode).Append('\n');
            if (token is not null) connect.Append("Authorization:Bearer ").Append(token).Append('\n');
            connect.Append("\n\0");
            await socket.SendAsync(Encoding.UTF8.GetBytes(connect.ToString()), WebSocketMessageType.Text, true, cancellationToken);
            var connected = await connection.ReceiveOneAsync(cancellationToken);
            if (connected.Command != StompCommand.Connected)
                throw new InvalidOperationException($"broker refused CONNECT: {connected.Headers["message"] ?? connected.Command.ToWireString()}");
            connection.Session = connected.Headers["session"];
            connection.StartHeartBeats(options.HeartBeat, connected.Headers["heart-beat"]);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();                         // a failed connect leaves no socket open on the broker
            throw;
        }
    }

    /// <summary>STOMP 1.2: the client sends every max(cx, sy) ms when both are non-zero (sy from the CONNECTED frame).</summary>
    private void StartHeartBeats(StompHeartBeat client, string? server)
    {
        _ = StompHeartBeat.TryParse(Encoding.ASCII.GetBytes(server ?? ""), out var offer);
        HeartBeatSendMs = StompHeartBeat.Negotiate(client, offer).Receive;
        if (HeartBeatSendMs > 0) HeartBeats.Add(this, HeartBeatSendMs);
    }

    /// <summary>Called by the heart-beat timer: sends an EOL when nothing was sent for the interval less one tick. A send in
    /// progress is skipped (it is "something" sent), and the beat does not wait for its completion.</summary>
    internal void SendHeartBeatIfDue(long nowMs, long tickMs)
    {
        if (nowMs - Volatile.Read(ref _lastSentMs) < HeartBeatSendMs - tickMs || !_sendGate.Wait(0)) return;
        _ = HeartBeatAsync();
    }

    private async Task HeartBeatAsync()
    {
        try
        {
            Volatile.Write(ref _lastSentMs, Environment.TickCount64);
            await _socket.SendAsync(s_eol, WebSocketMessageType.Text, true, CancellationToken.None);
            HeartBeats.CountSent();
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or InvalidOperationException) { }   // closed: the receive loop reports it
        finally
        {
            _sendGate.Release();
        }
    }

    private static readonly ReadOnlyMemory<byte> s_eol = "\n"u8.ToArray();

    public async Task SubscribeAsync(string destination, string id, CancellationToken cancellationToken)
    {
        var receipt = "sub-" + id;
        await SendRawAsync($"SUBSCRIBE\nid:{id}\ndestination:{destination}\nack:auto\nreceipt:{receipt}\n\n\0", cancellationToken);
        var frame = await ReceiveOneAsync(cancellationToken);
        if (frame.Command != StompCommand.Receipt || frame.Headers["receipt-id"] != receipt)
            throw new InvalidOperationException($"SUBSCRIBE {destination} failed: {frame.Headers["message"] ?? frame.Command.ToWireString()}");
    }

    /// <summary>Sends SUBSCRIBE (with <c>since</c> when given, for a chat resume) without waiting for its RECEIPT: the
    /// caller's receive loop sees the RECEIPT and any replayed MESSAGEs, in whatever order the broker sends them.</summary>
    public Task StartSubscribeAsync(string destination, string id, string? receipt, long? since, CancellationToken cancellationToken) =>
        SendRawAsync($"SUBSCRIBE\nid:{id}\ndestination:{destination}\nack:auto\n"
            + (receipt is null ? "" : $"receipt:{receipt}\n") + (since is { } s ? $"since:{s}\n" : "") + "\n\0", cancellationToken);

    /// <summary>Reads frames until the RECEIPT <paramref name="receipt"/> (other frames before it are dropped; at most 1000).</summary>
    public async Task WaitForReceiptAsync(string receipt, CancellationToken cancellationToken)
    {
        for (var i = 0; i < 1000; i++)
        {
            var frame = await ReceiveOneAsync(cancellationToken);
            if (frame.Command == StompCommand.Receipt && frame.Headers["receipt-id"] == receipt) return;
            if (frame.Command == StompCommand.Error) throw new InvalidOperationException($"waiting for RECEIPT {receipt}: {frame.Headers["message"]}");
        }
        throw new InvalidOperationException($"no RECEIPT {receipt} in 1000 frames");
    }

    /// <summary>Sends a SEND whose body starts with <paramref name="timestamp"/> (Stopwatch ticks, 16 hex digits) padded to <paramref name="size"/>.</summary>
    public ValueTask SendAsync(string destination, long timestamp, int size, string? receipt, CancellationToken cancellationToken) =>
        SendAsync(destination, timestamp, size, receipt, null, cancellationToken);

    /// <summary>As above, with a <c>client-msg-id</c> (WsBroker chat: a resend of the same id is stored once).</summary>
    public async ValueTask SendAsync(string destination, long timestamp, int size, string? receipt, string? clientMsgId, CancellationToken cancellationToken)
    {
        await _sendGate.WaitAsync(cancellationToken);
        try
        {
            _sendBuffer.ResetWrittenCount();
            StompFrameWriter.WriteCommand(_sendBuffer, StompCommand.Send);
            StompFrameWriter.WriteHeader(_sendBuffer, "destination", destination);
            if (receipt is not null) StompFrameWriter.WriteHeader(_sendBuffer, "receipt", receipt);
            if (clientMsgId is not null) StompFrameWriter.WriteHeader(_sendBuffer, "client-msg-id", clientMsgId);
            StompFrameWriter.WriteHeader(_sendBuffer, "content-length"u8, size);
            var span = _sendBuffer.GetSpan(size + 2);
            span[0] = (byte)'\n';
            WriteTimestamp(timestamp, span.Slice(1, 16));
            span.Slice(17, size - 16).Fill((byte)'x');
            span[size + 1] = 0;
            _sendBuffer.Advance(size + 2);
            Volatile.Write(ref _lastSentMs, Environment.TickCount64);
            await _socket.SendAsync(_sendBuffer.WrittenMemory, WebSocketMessageType.Text, true, cancellationToken);
        }
        finally
        {
            _sendGate.Release();
        }
    }

    private async Task SendRawAsync(string wire, CancellationToken cancellationToken)
    {
        await _sendGate.WaitAsync(cancellationToken);
        try
        {
            Volatile.Write(ref _lastSentMs, Environment.TickCount64);
            await _socket.SendAsync(Encoding.UTF8.GetBytes(wire), WebSocketMessageType.Text, true, cancellationToken);
        }
        finally { _sendGate.Release(); }
    }

    /// <summary>Calls <paramref name="onFrame"/> for every frame until the socket closes or the token fires. A close that
    /// the token did not cause sets <see cref="ClosedByBroker"/>.</summary>
    public async Task ReceiveLoopAsync(Action<StompFrameView> onFrame, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                if (!await FillAsync(cancellationToken)) break;
                Drain(onFrame);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
        catch (WebSocketException) { }
        if (!cancellationToken.IsCancellationRequested) ClosedByBroker = true;
    }

    private async Task<StompFrame> ReceiveOneAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        StompFrame? frame = null;
        while (frame is null)
        {
            if (TryTake(out var taken)) return taken;
            if (!await FillAsync(timeout.Token)) throw new InvalidOperationException($"connection closed: {_socket.CloseStatus} {_socket.CloseStatusDescription}");
        }
        return frame;
    }

    private bool TryTake(out StompFrame frame)
    {
        frame = null!;
        var buffer = new ReadOnlySequence<byte>(_receive, 0, _received);
        var status = _parser.TryParse(ref buffer, out var error);
        if (status == OperationStatus.InvalidData) throw new InvalidDataException("bad frame from the broker: " + error.ToMessage());
        if (status == OperationStatus.Done) frame = _parser.Frame.ToFrame();
        Compact(buffer);
        return status == OperationStatus.Done;
    }

    private void Drain(Action<StompFrameView> onFrame)
    {
        var buffer = new ReadOnlySequence<byte>(_receive, 0, _received);
        OperationStatus status;
        while ((status = _parser.TryParse(ref buffer, out var error)) == OperationStatus.Done) onFrame(_parser.Frame);
        if (status == OperationStatus.InvalidData) throw new InvalidDataException("bad frame from the broker");
        Compact(buffer);
    }

    private void Compact(ReadOnlySequence<byte> rest)
    {
        var consumed = _received - (int)rest.Length;
        if (consumed == 0) return;
        Buffer.BlockCopy(_receive, consumed, _receive, 0, (int)rest.Length);
        _received = (int)rest.Length;
    }

    private async Task<bool> FillAsync(CancellationToken cancellationToken)
    {
        if (_received == _receive.Length) Array.Resize(ref _receive, _receive.Length * 2);
        var result = await _socket.ReceiveAsync(_receive.AsMemory(_received), cancellationToken);
        if (result.MessageType == WebSocketMessageType.Close) return false;
        if (result.EndOfMessage && result.Count > 0 && !_receive.AsSpan(_received, result.Count).ContainsAnyExcept((byte)'\n', (byte)'\r'))
            Interlocked.Increment(ref _heartBeatsReceived);
        _received += result.Count;
        return true;
    }

    public static void WriteTimestamp(long ticks, Span<byte> destination) => Utf8Formatter.TryFormat(ticks, destination, out _, new StandardFormat('X', 16));

    /// <summary>The send timestamp of a body written by <see cref="SendAsync"/>, or -1.</summary>
    public static long ReadTimestamp(ReadOnlySequence<byte> body)
    {
        if (body.Length < 16) return -1;
        Span<byte> hex = stackalloc byte[16];
        body.Slice(0, 16).CopyTo(hex);
        return Utf8Parser.TryParse(hex, out long ticks, out var used, 'X') && used == 16 ? ticks : -1;
    }

    public static double TicksToMicroseconds(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;

    public async ValueTask DisposeAsync()
    {
        HeartBeats.Remove(this);
        // The gate keeps DISCONNECT from racing a heart-beat or a send still in flight (one send at a time on a WebSocket).
        var gated = await _sendGate.WaitAsync(TimeSpan.FromSeconds(2));
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            if (gated && _socket.State == WebSocketState.Open)
            {
                await _socket.SendAsync("DISCONNECT\n\n\0"u8.ToArray(), WebSocketMessageType.Text, true, cts.Token);
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException) { }
        finally
        {
            _socket.Dispose();
            if (gated) _sendGate.Release();                           // a send after this fails on the disposed socket
        }
        // _sendGate is not disposed: the heart-beat timer may still be on its way to this connection, and a SemaphoreSlim
        // whose wait handle was never asked for holds nothing to free.
    }
}
