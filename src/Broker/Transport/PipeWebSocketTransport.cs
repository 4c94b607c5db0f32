using System.Buffers;
using System.IO.Pipelines;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;

namespace WsBroker.Broker.Transport;

/// <summary>
/// RFC 6455 over a Kestrel connection's own pipes (<c>Broker:Transport=Pipeline</c>), after the upgrade that
/// <c>PipelineWebSocketEndpoint</c> answered. Reads: the payload of each data frame is unmasked in place in Kestrel's input
/// buffer and handed to the session as it lies there, so STOMP frames are parsed with no copy. Only when the session leaves
/// part of a frame unconsumed at the end of a WebSocket frame whose continuation lies past the next frame header (a STOMP
/// frame split across WebSocket messages or fragments, or a raw URL's fragmented message) are the bytes carried in a pipe
/// borrowed from <see cref="PipePool"/> until the session has consumed them. Control frames are answered as they come,
/// between fragments too. An idle connection holds no buffer: only Kestrel's pending read, which keeps none.
/// <para>Writes: the writer loop's messages, and the read side's pongs and close replies, take turns through a gate that
/// allocates only when they meet; frames go out whole, one flush each.</para>
/// <para>Closing: a client close is answered with its status, a server close carries the reason's status
/// (<see cref="DisconnectReasons.ToCloseStatus"/>) and <see cref="FinishAsync"/> then waits, bounded, for the client's
/// reply. Bad input fails the connection: close 1002 (protocol error) or 1007 (invalid UTF-8 in a text message or close
/// reason), then a <see cref="WebSocketException"/> from the read.</para>
/// </summary>
public sealed class PipeWebSocketTransport : IConnectionTransport, IDisposable
{
    private const int CloseSent = 1, CloseReceived = 2, Failed = 4, Aborted = 8;
    private const int MaxInlineTurns = 8;
    private readonly ConnectionContext _connection;
    private InboundFrames _frames;                               // a struct: the frame and message being read, in place
    private Pipe? _carry;                                        // bytes the session left at a frame's end, with what follows
    private ReadOnlySequence<byte> _read;                        // what the last read returned
    private Delivered _delivered;                                // and from where
    private SequencePosition _inputEnd;                          // the end of the input buffer that read examined
    private int _state;
    private int _writing;                                        // the write gate: 1 while someone writes
    private TaskCompletionSource? _writeWaiter;                  // made only when the two writers meet
    private WebSocketKeepAlive? _keepAlive;                      // raw topic URLs only (no timer: the scanner ticks it)
    private readonly int _controlSendTimeoutMs;

    /// <param name="controlSendTimeout">How long a pong, a close reply or the close of a failed connection, sent by the read
    /// side, may wait for the client to read before the connection is dropped (<c>Broker:SlowConsumerMs</c>).</param>
    public PipeWebSocketTransport(ConnectionContext connection, TimeSpan? controlSendTimeout = null)
    {
        _connection = connection;
        _controlSendTimeoutMs = (int)(controlSendTimeout ?? TimeSpan.FromSeconds(5)).TotalMilliseconds;
    }

    /// <summary>The Kestrel connection under the transport (tests look at its socket).</summary>
    internal ConnectionContext Connection => _connection;

    // Kestrel's pipes, read through the connection each time: two fields less on every connection.
    private PipeReader Input => _connection.Transport.Input;

    private bool Has(int flag) => (Volatile.Read(ref _state) & flag) != 0;

    private void Set(int flag) => Interlocked.Or(ref _state, flag);

    // ---- reading ------------------------------------------------------------------------------------------------------

    /// <summary>See <see cref="IConnectionTransport.ReadAsync"/>. A read waiting for the client ends with
    /// <see cref="Abort"/>, not with <paramref name="cancellationToken"/> (which is checked before each read).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TransportReadResult> ReadAsync(CancellationToken cancellationToken)
    {
        var turns = 0;
        while (true)
        {
            // On the socket event thread (InlineSocketCompletions) a client's bytes may keep this loop going without a wait
            // (empty fragments, pongs): a few turns, then the rest is read on the thread pool.
            if (++turns > MaxInlineTurns && InlineSocketCompletions.OnEventThread) await Task.Yield();
            if (Has(CloseReceived)) return TransportReadResult.Completed;
            cancellationToken.ThrowIfCancellationRequested();
            ReadResult input;
            try
            {
                // No token: a pending read would hold a registration on it for as long as the connection idles. Abort()
                // ends the read instead (a session cancels its token and aborts its transport together).
                input = await Input.ReadAsync(CancellationToken.None);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Kestrel aborted the connection (ConnectionAbortedException): the socket is gone.
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the connection was aborted");
            }
            if (input.IsCanceled)                                       // FinishAsync's time is up (CancelPendingRead)
            {
                Input.AdvanceTo(input.Buffer.Start);
                throw new OperationCanceledException(cancellationToken);
            }
            _keepAlive?.Received();
            var buffer = input.Buffer;
            if (!_frames.InFrame)
            {
                var status = WebSocketFrameHeader.TryRead(buffer, out var header, out _);
                if (status == OperationStatus.InvalidData || status == OperationStatus.Done && !_frames.Accepts(header))
                    throw await FailAsync(WebSocketCloseStatus.ProtocolError);
                if (status == OperationStatus.NeedMoreData || header.IsControl && buffer.Length < header.Length + header.PayloadLength)
                {
                    if (input.IsCompleted) return ClosedWithoutHandshake(buffer);
                    Input.AdvanceTo(buffer.Start, buffer.End);
                    continue;
                }
                if (header.IsControl)
                {
                    // A pong, a close or its reply is sent from the thread pool, never the event thread (a flood of pings).
                    if (InlineSocketCompletions.OnEventThread) await Task.Yield();
                    await ControlAsync(header, buffer.Slice(header.Length, header.PayloadLength));   // consumes the frame
                    continue;
                }
                _frames.Start(header);
                buffer = buffer.Slice(header.Length);
                if (header.PayloadLength == 0)
                {
                    Input.AdvanceTo(buffer.Start);                     // the header; what follows is read again at once
                    if (!_frames.EndFrame(out var invalidText)) continue;
                    if (invalidText) throw await FailAsync(WebSocketCloseStatus.InvalidPayloadData);
                    return _carry is null ? DeliverNothing() : DeliverCarry(endOfMessage: true);
                }
            }
            var available = Math.Min(buffer.Length, _frames.Remaining);
            if (available == 0)
            {
                if (input.IsCompleted) return ClosedWithoutHandshake(buffer);
                Input.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }
            // The client's side has ended inside a frame and all of it was handed over before, unconsumed: nothing more can
            // come, so that read would be returned again and again.
            if (input.IsCompleted && _carry is null && _frames.Ahead >= available) return ClosedWithoutHandshake(buffer);
            var payload = buffer.Slice(0, available);
            if (_carry is not null)
            {
                var valid = CopyToCarry(payload);
                Input.AdvanceTo(payload.End);
                var ended = false;
                var invalidText = false;
                if (valid && _frames.Remaining == 0) ended = _frames.EndFrame(out invalidText);
                if (!valid || invalidText) throw await FailAsync(WebSocketCloseStatus.InvalidPayloadData);
                return DeliverCarry(ended);
            }
            if (!_frames.Unmask(payload)) throw await FailAsync(WebSocketCloseStatus.InvalidPayloadData);
            var endOfMessage = _frames.IsFinal && available == _frames.Remaining;
            if (endOfMessage && !_frames.TextComplete) throw await FailAsync(WebSocketCloseStatus.InvalidPayloadData);
            _read = payload;
            _inputEnd = buffer.End;
            _delivered = Delivered.InPlace;
            return new TransportReadResult(payload, endOfMessage, IsCompleted: false);
        }
    }

    /// <summary>See <see cref="IConnectionTransport.Waitable"/>: Kestrel's input pipe, while no carried bytes wait (they
    /// are handed over with the next new ones, which ReadAsync waits for itself).</summary>
    public PipeReader? Waitable => _carry is null && !Has(CloseReceived) ? Input : null;

    public void AdvanceTo(SequencePosition consumed)
    {
        var read = _read;
        var delivered = _delivered;
        _read = default;
        _delivered = Delivered.Nothing;
        if (delivered == Delivered.Carried)
        {
            _carry!.Reader.AdvanceTo(consumed, read.End);
            if (!consumed.Equals(read.End)) return;
            PipePool.Return(_carry);                                    // all consumed: back to reading in place
            _carry = null;
            return;
        }
        if (delivered == Delivered.Nothing) return;                    // an empty message: its header is consumed
        var rest = read.Slice(consumed);
        _frames.Consumed(read.Length - rest.Length);
        if (rest.IsEmpty)
        {
            if (_frames.Remaining == 0) _frames.EndFrame(out _);        // its end was judged when it was delivered
            Input.AdvanceTo(consumed);                                 // what follows (the next frame) is read again at once
        }
        else if (_frames.Remaining > rest.Length)
            Input.AdvanceTo(consumed, _inputEnd);                      // the frame goes on: wait for more of it, in place
        else
        {
            // The frame ends here, and the session's frame goes on in a later WebSocket frame: carry the rest.
            _carry = PipePool.Rent();
            foreach (var segment in rest) _carry.Writer.Write(segment.Span);
            _frames.Consumed(rest.Length);
            _frames.EndFrame(out _);
            Input.AdvanceTo(rest.End);
        }
    }

    private TransportReadResult DeliverNothing()
    {
        _delivered = Delivered.Nothing;
        return new TransportReadResult(ReadOnlySequence<byte>.Empty, EndOfMessage: true, IsCompleted: false);
    }

    private TransportReadResult DeliverCarry(bool endOfMessage)
    {
        _carry!.Writer.FlushAsync().GetAwaiter().GetResult();          // no pause threshold: completes at once
        _carry.Reader.TryRead(out var read);
        _read = read.Buffer;
        _delivered = Delivered.Carried;
        return new TransportReadResult(read.Buffer, endOfMessage, IsCompleted: false);
    }

    // Copies payload bytes after the carried ones, unmasking (and validating) them on the way; false: invalid UTF-8.
    private bool CopyToCarry(ReadOnlySequence<byte> payload)
    {
        foreach (var segment in payload)
        {
            var target = _carry!.Writer.GetSpan(segment.Length)[..segment.Length];
            segment.Span.CopyTo(target);
            _carry.Writer.Advance(segment.Length);
            if (!_frames.UnmaskCopy(target)) return false;
        }
        return true;
    }

    private TransportReadResult ClosedWithoutHandshake(ReadOnlySequence<byte> buffer)
    {
        Input.AdvanceTo(buffer.End);
        Set(CloseReceived);                                             // nothing more will come
        if (Has(CloseSent)) return TransportReadResult.Completed;      // we closed; the client dropped without replying
        throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the client closed the connection without a close frame");
    }

    // Ping, pong or close: `payload` is still masked, at most 125 bytes. Consumes the frame.
    private async ValueTask ControlAsync(WebSocketFrameHeader header, ReadOnlySequence<byte> payload)
    {
        var bytes = ArrayPool<byte>.Shared.Rent(WebSocketFrameHeader.MaxControlPayload);
        try
        {
            var length = (int)payload.Length;
            payload.CopyTo(bytes);
            WebSocketMask.Apply(bytes.AsSpan(0, length), header.Mask, 0);
            Input.AdvanceTo(payload.End);
            switch (header.Opcode)
            {
                case WebSocketOpcode.Ping:
                    await WriteControlAsync(WebSocketOpcode.Pong, bytes.AsMemory(0, length));
                    break;
                case WebSocketOpcode.Close:
                    var (status, error) = WebSocketCloseFrame.Read(bytes.AsSpan(0, length));
                    if (error is { } bad) throw await FailAsync(bad);
                    Set(CloseReceived);
                    await WriteControlAsync(WebSocketOpcode.Close, bytes.AsMemory(0, status is null ? 0 : 2));   // echo the status
                    break;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    // Fails the connection (RFC 6455 §7.1.7): close with `status` unless a close was sent, then the read throws.
    private async ValueTask<Exception> FailAsync(WebSocketCloseStatus status)
    {
        Set(Failed);
        try
        {
            await WriteCloseAsync(status, status == WebSocketCloseStatus.InvalidPayloadData ? "invalid UTF-8" : "protocol error", default, bounded: true);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or WebSocketException or InvalidOperationException) { }
        return new WebSocketException(WebSocketError.Faulted, $"WebSocket protocol violation: close {(int)status}");
    }

    // ---- writing ------------------------------------------------------------------------------------------------------

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(ReadOnlyMemory<byte> message, bool binary, CancellationToken cancellationToken)
    {
        await EnterWriteAsync(cancellationToken);
        try
        {
            // Aborted: a flush given up on (the read side's bound) may still be pending on the output; nothing more goes to it.
            if (IsClosing) throw new WebSocketException(WebSocketError.InvalidState, "the connection is closing");
            WebSocketFrameWriter.Write(Output, binary ? WebSocketOpcode.Binary : WebSocketOpcode.Text, message.Span);
            await FlushAsync(cancellationToken);
        }
        finally
        {
            ExitWrite();
        }
    }

    /// <summary>See <see cref="IConnectionTransport.TrySendNow"/>: through the write gate without waiting for it, one
    /// frame and a flush that Kestrel's output pipe completes at once unless it is above its pause threshold (then the gate
    /// opens when the flush completes).</summary>
    public bool TrySendNow(ReadOnlySpan<byte> message) => TrySendNow(WebSocketOpcode.Text, message);

    /// <summary>One frame of <paramref name="opcode"/> at once if no other send is under way (the heart-beat scanner's
    /// STOMP beats, and a raw topic URL's keep-alive pings); false, nothing sent, otherwise or when closing.</summary>
    internal bool TrySendNow(WebSocketOpcode opcode, ReadOnlySpan<byte> payload)
    {
        if (IsClosing || !TryEnterWrite()) return false;
        var exit = true;
        try
        {
            if (IsClosing) return false;
            WebSocketFrameWriter.Write(Output, opcode, payload);
            var flush = Output.FlushAsync();
            if (!flush.IsCompleted)
            {
                exit = false;
                _ = ExitWhenFlushedAsync(flush);
            }
            return true;
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException)
        {
            return true;                                             // the connection is gone: its session ends anyway
        }
        finally
        {
            if (exit) ExitWrite();
        }
    }

    private async Task ExitWhenFlushedAsync(ValueTask<FlushResult> flush)
    {
        try { await flush; }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException) { }
        finally { ExitWrite(); }
    }

    public ValueTask CloseAsync(DisconnectReason reason, CancellationToken cancellationToken) =>
        WriteCloseAsync(reason.ToCloseStatus(), reason.Description(), cancellationToken, bounded: false);

    // bounded: sent by the read side (see FlushAsync).
    private async ValueTask WriteCloseAsync(WebSocketCloseStatus status, string reason, CancellationToken cancellationToken, bool bounded)
    {
        await EnterWriteAsync(cancellationToken);
        try
        {
            if (Has(CloseSent) || Has(Aborted)) return;
            Set(CloseSent);
            WebSocketFrameWriter.WriteClose(Output, status, reason);
            await FlushAsync(cancellationToken, bounded);
        }
        finally
        {
            ExitWrite();
        }
    }

    // A pong, or the reply to the client's close: nothing after a close.
    private async ValueTask WriteControlAsync(WebSocketOpcode opcode, ReadOnlyMemory<byte> payload)
    {
        await EnterWriteAsync(default);
        try
        {
            if (Has(CloseSent) || Has(Aborted)) return;
            if (opcode == WebSocketOpcode.Close) Set(CloseSent);
            WebSocketFrameWriter.Write(Output, opcode, payload.Span);
            await FlushAsync(default, bounded: true);
        }
        finally
        {
            ExitWrite();
        }
    }

    // bounded: the read side's own sends (a pong, a close reply, the close of a failed connection) are on no clock of the
    // session's, which watches the writer's; a client that stops reading would park the read loop in them for good. Past
    // the bound the connection is dropped.
    private async ValueTask FlushAsync(CancellationToken cancellationToken, bool bounded = false)
    {
        var flush = Output.FlushAsync(cancellationToken);
        FlushResult flushed;
        if (!bounded || flush.IsCompleted) flushed = await flush;
        else
        {
            try
            {
                flushed = await flush.AsTask().WaitAsync(TimeSpan.FromMilliseconds(_controlSendTimeoutMs));
            }
            catch (TimeoutException)
            {
                Abort();
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the client stopped reading");
            }
        }
        if (flushed.IsCompleted) throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "the connection is gone");
    }

    internal bool TryEnterWrite() => Interlocked.CompareExchange(ref _writing, 1, 0) == 0;

    internal ValueTask EnterWriteAsync(CancellationToken cancellationToken) =>
        TryEnterWrite() ? ValueTask.CompletedTask : WaitToWriteAsync(cancellationToken);

    private async ValueTask WaitToWriteAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var current = Interlocked.CompareExchange(ref _writeWaiter, waiter, null) ?? waiter;
            // In: the waiter stays for the next holder's exit to complete (a spurious wake-up at worst). Taking it out here lost
            // the wake-up of another that waits on it when a holder had left between (so never woke it).
            if (TryEnterWrite()) return;
            await current.Task.WaitAsync(cancellationToken);            // the holder wakes us when it leaves
        }
    }

    internal void ExitWrite()
    {
        Volatile.Write(ref _writing, 0);
        Interlocked.Exchange(ref _writeWaiter, null)?.TrySetResult();
    }

    private PipeWriter Output => _connection.Transport.Output;

    internal bool IsClosing => Has(CloseSent) || Has(Aborted);

    /// <summary>Whether bytes are carried in a borrowed pipe (tests: an idle connection holds none).</summary>
    internal bool IsCarrying => _carry is not null;

    // ---- closing ------------------------------------------------------------------------------------------------------

    /// <summary>Sends a ping every <paramref name="interval"/>, and drops a connection that has sent nothing for
    /// <paramref name="timeout"/> (raw topic URLs: they have no STOMP heart-beats), on the ticks of <see cref="KeepAlive"/>.</summary>
    public void StartKeepAlive(TimeSpan interval, TimeSpan timeout) => _keepAlive = new WebSocketKeepAlive(this, interval, timeout);

    public void KeepAlive(long nowMs) => _keepAlive?.Tick(nowMs);

    public void Abort()
    {
        if ((Interlocked.Or(ref _state, Aborted) & Aborted) != 0) return;
        _connection.Abort(new ConnectionAbortedException("the broker dropped the connection"));
    }

    /// <summary>See <see cref="IConnectionTransport.FinishAsync"/>: when the broker sent a close and the client has not
    /// answered it yet, reads (and drops) what comes until the client's close, the end of the connection or
    /// <paramref name="timeout"/>; then releases a carried pipe.</summary>
    public async Task FinishAsync(TimeSpan timeout)
    {
        try
        {
            if (!Has(CloseSent) || Has(CloseReceived) || Has(Aborted) || Has(Failed)) return;
            using var cancel = new CancellationTokenSource(timeout);
            using var wake = cancel.Token.UnsafeRegister(static input => ((PipeReader)input!).CancelPendingRead(), Input);
            try
            {
                while (true)
                {
                    var read = await ReadAsync(cancel.Token);
                    if (read.IsCompleted) return;
                    AdvanceTo(read.Buffer.End);
                    if (InlineSocketCompletions.OnEventThread) await Task.Yield();   // what a client sends meanwhile is dropped off it
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException) { }
        }
        finally
        {
            Dispose();
        }
    }

    /// <summary>Releases a carried pipe (not reused).</summary>
    public void Dispose()
    {
        if (_carry is null) return;
        _carry.Reader.Complete();
        _carry.Writer.Complete();
        _carry = null;
    }

    private enum Delivered : byte { Nothing, InPlace, Carried }
}
