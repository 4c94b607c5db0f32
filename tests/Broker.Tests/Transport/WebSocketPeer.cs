using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Transport;

/// <summary>The client end of a <see cref="PipeWebSocketTransport"/> over in-memory pipes: writes client frames (masked,
/// in any split), reads the server's frames. Every wait is bounded.</summary>
internal sealed class WebSocketPeer : ConnectionContext
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly byte[] s_mask = [0x37, 0xFA, 0x21, 0x3D];
    private readonly Pipe _toServer;
    private readonly Pipe _toClient;

    /// <param name="inlineReads">The server's reads complete on the thread that writes the client's bytes (as on the socket
    /// event thread with inline completions); the threads that flush the server's output are noted in
    /// <see cref="ServerFlushThreads"/>.</param>
    /// <param name="clientReadsUpTo">Bytes of the server's output the client takes before a server flush waits for it to
    /// read (0: never waits), as a socket whose client stopped reading.</param>
    /// <param name="controlSendTimeout">The server's bound on a pong or close reply the client does not take.</param>
    public WebSocketPeer(bool inlineReads = false, int clientReadsUpTo = 0, TimeSpan? controlSendTimeout = null)
    {
        _toServer = new(new PipeOptions(readerScheduler: inlineReads ? PipeScheduler.Inline : PipeScheduler.ThreadPool,
            pauseWriterThreshold: 0, useSynchronizationContext: false));
        _toClient = new(new PipeOptions(pauseWriterThreshold: clientReadsUpTo, resumeWriterThreshold: clientReadsUpTo,
            useSynchronizationContext: false));
        Transport = new DuplexPipe(_toServer.Reader, new FlushNotingWriter(_toClient.Writer, ServerFlushThreads));
        Server = new PipeWebSocketTransport(this, controlSendTimeout);
    }

    /// <summary>The managed thread ids that flushed the server's output (a pong, a message, a close).</summary>
    public System.Collections.Concurrent.ConcurrentBag<int> ServerFlushThreads { get; } = [];

    /// <summary>The client's bytes, written and flushed on the caller's thread.</summary>
    public void WriteNow(byte[] bytes)
    {
        _toServer.Writer.Write(bytes);
        _toServer.Writer.FlushAsync().AsTask().GetAwaiter().GetResult();
    }

    public PipeWebSocketTransport Server { get; }
    public bool WasAborted { get; private set; }
    public override string ConnectionId { get; set; } = "test";
    public override IFeatureCollection Features { get; } = new FeatureCollection();
    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();
    public override IDuplexPipe Transport { get; set; }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        WasAborted = true;
        _toServer.Writer.Complete(abortReason);                  // as Kestrel: the pending read fails
    }

    /// <summary>A client frame: masked unless <paramref name="masked"/> is false; <paramref name="first"/> overrides byte 0
    /// (reserved bits, odd opcodes); <paramref name="length64"/> forces the 64-bit length form with that value.</summary>
    public static byte[] Frame(WebSocketOpcode opcode, ReadOnlySpan<byte> payload, bool fin = true, bool masked = true, byte? first = null,
        ulong? length64 = null)
    {
        var output = new ArrayBufferWriter<byte>();
        var header = output.GetSpan(14);
        header[0] = first ?? (byte)((fin ? 0x80 : 0) | (byte)opcode);
        var maskBit = masked ? (byte)0x80 : (byte)0;
        int length;
        if (length64 is { } forced)
        {
            header[1] = (byte)(maskBit | 127);
            BinaryPrimitives.WriteUInt64BigEndian(header[2..], forced);
            length = 10;
        }
        else if (payload.Length <= 125)
        {
            header[1] = (byte)(maskBit | payload.Length);
            length = 2;
        }
        else if (payload.Length <= ushort.MaxValue)
        {
            header[1] = (byte)(maskBit | 126);
            BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)payload.Length);
            length = 4;
        }
        else
        {
            header[1] = (byte)(maskBit | 127);
            BinaryPrimitives.WriteUInt64BigEndian(header[2..], (ulong)payload.Length);
            length = 10;
        }
        if (masked)
        {
            s_mask.CopyTo(header[length..]);
            length += 4;
        }
        output.Advance(length);
        var body = payload.ToArray();
        if (masked)
        {
            for (var i = 0; i < body.Length; i++) body[i] ^= s_mask[i % 4];
        }
        output.Write(body);
        return output.WrittenSpan.ToArray();
    }

    public static byte[] Close(ushort code, byte[]? reason = null)
    {
        var payload = new byte[2 + (reason?.Length ?? 0)];
        BinaryPrimitives.WriteUInt16BigEndian(payload, code);
        reason?.CopyTo(payload, 2);
        return Frame(WebSocketOpcode.Close, payload);
    }

    /// <summary>Writes the bytes as the client, cut at <paramref name="cuts"/> (each part flushed on its own).</summary>
    public async Task SendAsync(byte[] bytes, params int[] cuts)
    {
        var start = 0;
        foreach (var cut in cuts.Where(c => c < bytes.Length).Append(bytes.Length))
        {
            await _toServer.Writer.WriteAsync(bytes.AsMemory(start, cut - start)).AsTask().WaitAsync(Timeout);
            start = cut;
            await Task.Yield();
        }
    }

    /// <summary>The client closes its side of the TCP connection.</summary>
    public void EndOfStream() => _toServer.Writer.Complete();

    /// <summary>The next frame the server sent.</summary>
    public async Task<(WebSocketOpcode Opcode, bool Fin, byte[] Payload)> ReceiveAsync()
    {
        using var cancel = new CancellationTokenSource(Timeout);
        while (true)
        {
            var read = await _toClient.Reader.ReadAsync(cancel.Token);
            var buffer = read.Buffer;
            if (TryTakeServerFrame(ref buffer, out var frame))
            {
                _toClient.Reader.AdvanceTo(buffer.Start);
                return frame;
            }
            if (read.IsCompleted) throw new InvalidOperationException("the server's side ended");
            _toClient.Reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>The status of the server's close frame (frames before it are skipped).</summary>
    public async Task<int> ReceiveCloseAsync()
    {
        while (true)
        {
            var (opcode, _, payload) = await ReceiveAsync();
            if (opcode == WebSocketOpcode.Close) return payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(payload) : 1005;
        }
    }

    private static bool TryTakeServerFrame(ref ReadOnlySequence<byte> buffer, out (WebSocketOpcode, bool, byte[]) frame)
    {
        frame = default;
        if (buffer.Length < 2) return false;
        var head = buffer.Slice(0, Math.Min(10, buffer.Length)).ToArray();
        Assert.Equal(0, head[1] & 0x80);                         // server frames are never masked
        Assert.Equal(0, head[0] & 0x70);
        var length7 = head[1] & 0x7F;
        var headerLength = length7 switch { 126 => 4, 127 => 10, _ => 2 };
        if (head.Length < headerLength) return false;
        var length = length7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(2)),
            127 => (long)BinaryPrimitives.ReadUInt64BigEndian(head.AsSpan(2)),
            _ => length7,
        };
        if (buffer.Length < headerLength + length) return false;
        frame = ((WebSocketOpcode)(head[0] & 0x0F), (head[0] & 0x80) != 0, buffer.Slice(headerLength, length).ToArray());
        buffer = buffer.Slice(headerLength + length);
        return true;
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;
        public PipeWriter Output => output;
    }

    private sealed class FlushNotingWriter(PipeWriter inner, System.Collections.Concurrent.ConcurrentBag<int> threads) : PipeWriter
    {
        public override void Advance(int bytes) => inner.Advance(bytes);
        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);
        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
        public override void CancelPendingFlush() => inner.CancelPendingFlush();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            threads.Add(Environment.CurrentManagedThreadId);
            return inner.FlushAsync(cancellationToken);
        }
    }
}
