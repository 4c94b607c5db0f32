using System.Buffers;
using System.IO.Pipelines;
using System.Net.WebSockets;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// The transport pump every session shares: the session's run, whose flow is one read loop that hands the bytes of
/// <see cref="IConnectionTransport.ReadAsync"/> to the session (<see cref="BrokerSession.ReceiveAsync"/>; the loop is the
/// run's own frame, so an idle session waits in one async frame here, not in a run awaiting a loop), and one writer that
/// drains the session's bounded <see cref="Outbox"/> into as few transport messages as possible (STYLE.md "Write side") and
/// runs only while there is something to send. The writer is the only code that sends, but for the heart-beat scanner's
/// beats (<see cref="IConnectionTransport.TrySendNow"/>). Static: both run over their session's own fields, so the pump
/// costs a connection no object of its own, and an idle one holds no write buffer and no writer frame (and, in the
/// transport, no read buffer), only the pending read.
/// </summary>
internal static class TransportPump
{
    private const int MaxFramesPerFlush = 256;
    // Heart-beat reads the socket event thread handles within InlineWindowMs of each other: past it the pump hops to the
    // thread pool like any frame, so a client that floods EOLs cannot hold the event thread of every connection. A client
    // at rest sends one every few seconds.
    private const int MaxInlineHeartBeatReads = 8;
    private const int InlineWindowMs = 100;
    private const int MaxBytesPerFlush = 256 * 1024;
    private const string ExpiredDetail =
        "the session's token expired (its exp plus Auth:ClockSkewSeconds) without a refresh: SEND /session/token with a new one before then";

    /// <summary>Runs <paramref name="session"/> to its end: starts the writer loop, reads until the client or the broker
    /// ends the session, then lets the session end (<see cref="BrokerSession.EndAsync"/>).</summary>
    public static async Task RunAsync(BrokerSession session)
    {
        session.Opened();
        StartWriter(session);
        try
        {
            // The account is ambient for this loop's whole async flow: LocalDelivery finds it however deep the publish is (a
            // SEND, a chat handler after an await). Set here, the change stays inside this method's flow.
            var account = session.OpenCreditAccount();
            account.MakeCurrent();
            await session.StartAsync();
            // The transport owns the buffers (Kestrel's connection pipe, or a pipe borrowed while bytes are in flight): an idle
            // session holds none, only the pending read.
            var transport = session.Transport;
            long left = 0;                                                    // what the last read left unconsumed
            var inlineRun = 0;                                                // inline reads, each within the window of the last
            long lastInlineMs = 0;
            while (!session.IsClosing)
            {
                if (transport.Waitable is { } input && !session.Aborted.IsCancellationRequested)
                {
                    // Wait for the client here, on the pipe itself, so that an idle session holds this frame only; what
                    // came is left unexamined, and ReadAsync finds it at once. A failed wait (the connection aborted) is
                    // ReadAsync's to report, as it reads the same pipe.
                    var waited = false;
                    ReadResult ready = default;
                    try
                    {
                        ready = await input.ReadAsync(CancellationToken.None);
                        waited = true;
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException) { }
                    if (waited) input.AdvanceTo(ready.Buffer.Start, ready.Buffer.Start);
                }
                var read = await transport.ReadAsync(session.Aborted);
                if (read.IsCompleted) break;
                var buffer = read.Buffer;
                // Nothing the client sends after its token expired is handled (the scanner may not have looked yet).
                if (session.ExpireIfDue(session.Clock.Received()))
                {
                    transport.AdvanceTo(buffer.Start);
                    break;
                }
                session.Services.Metrics.BytesReceived((int)(buffer.Length - left));
                if (session.MessageLimit > 0 && !read.EndOfMessage && buffer.Length <= session.MessageLimit)
                {
                    // A message arriving in pieces (raw topic URLs) is gathered off the event thread after a few.
                    if (InlineSocketCompletions.OnEventThread && InlineRunTooLong(ref inlineRun, ref lastInlineMs)) await Task.Yield();
                    transport.AdvanceTo(buffer.Start);                        // a whole message first (raw topic URLs)
                    left = buffer.Length;
                    session.Clock.PartialFrame(progressed: false);          // timed from its first piece, pings answered or not
                    continue;
                }
                // Inline socket completions: the socket event thread read this. Heart-beats are noted there; anything else is
                // handled on the thread pool, so that no handler holds up the event thread of every connection.
                if (InlineSocketCompletions.OnEventThread && (!session.OnlyHeartBeats(buffer) || InlineRunTooLong(ref inlineRun, ref lastInlineMs)))
                    await Task.Yield();
                var consumed = buffer.Start;
                account.BeginHandling();
                try
                {
                    var handled = session.ReceiveAsync(buffer);
                    if (handled.IsCompletedSuccessfully) consumed = handled.Result;
                    else
                    {
                        // A handler awaited (a database lookup, say): the client's heart-beats are not read meanwhile, and
                        // its silence is not its fault (CheckTimeouts waits).
                        session.PauseReading();
                        try { consumed = await handled; }
                        finally { session.ResumeReading(); }
                    }
                }
                finally
                {
                    account.EndHandling();
                    // consumed = start of the unfinished frame; the transport keeps the rest for the next read.
                    transport.AdvanceTo(consumed);
                }
                left = buffer.Slice(consumed).Length;
                if (left == 0) session.Clock.NoPartialFrame();
                else session.Clock.PartialFrame(progressed: !consumed.Equals(buffer.Start));
                // Credit flow: what this read published went into queues above high water; read nothing more until they
                // drain (one read is at most one pipe segment of frames, so the overshoot is bounded).
                var credit = session.WaitForCreditAsync();
                if (!credit.IsCompletedSuccessfully) await credit;
            }
            if (InlineSocketCompletions.OnEventThread) await Task.Yield();   // the end is logged and acted on off it
            session.ReadEnded();
        }
        catch (Exception ex)
        {
            if (InlineSocketCompletions.OnEventThread) await Task.Yield();
            session.ReadFailed(ex);
        }
        finally
        {
            await session.EndAsync();                                 // on the thread pool: both ways here hopped
        }
    }

    // One more read handled on the event thread: true when it makes too many close together (the client is not at rest).
    private static bool InlineRunTooLong(ref int run, ref long lastMs)
    {
        var now = Environment.TickCount64;
        run = now - lastMs > InlineWindowMs ? 1 : run + 1;
        lastMs = now;
        return run > MaxInlineHeartBeatReads;
    }

    // The writer's resume: static, so a waiting writer costs its session no delegate.
    private static readonly Action<object?> s_resumeWriter = static state => _ = WriteAsync((BrokerSession)state!);

    /// <summary>Starts the session's writer: it sends what is queued and, when the outbox is empty, leaves a resume with it
    /// and returns (<see cref="Outbox.WaitToRead"/>), so an idle session's writer holds no async frame and no buffer. It runs
    /// again on the thread pool when something is queued; only one runs at a time (only the one that returned leaves a
    /// resume). Its end (the outbox completed and drained, or the session cut) is <see cref="BrokerSession.WriterEnded"/>.</summary>
    public static void StartWriter(BrokerSession session) => _ = WriteAsync(session);

    private static async Task WriteAsync(BrokerSession session)
    {
        var buffer = new PooledBufferWriter();
        var waiting = false;
        var lastWordSent = false;                                 // a close's ERROR (or its close) went out: no other ERROR
        try
        {
            while (true)
            {
                // The wait takes no token: an abort cancels the session's token, then completes the outbox, which ends it.
                var found = session.Outbox.WaitToRead(s_resumeWriter, session);
                if (found == OutboxRead.Waiting)
                {
                    waiting = true;                                   // resumed when something comes
                    return;
                }
                if (found == OutboxRead.Completed) break;
                session.Aborted.ThrowIfCancellationRequested();
                if (session.Outbox.IsSlow || session.IsExpired) break;
                var close = false;
                var closeError = false;                           // this batch holds a close's ERROR (its only uncounted frame)
                var batch = new OutboundBatch();
                var maxFrames = session.OneDeliveryPerMessage ? 1 : MaxFramesPerFlush;
                while (batch.Frames < maxFrames && buffer.WrittenCount < MaxBytesPerFlush && session.Outbox.TryRead(out var item))
                {
                    closeError |= item.Kind == OutboundKind.Frame && !item.Counted;
                    if (batch.Add(item, buffer, session)) { close = true; break; }
                }
                session.Outbox.ReleaseDrainedIfBelowLowWater();
                if (buffer.WrittenCount > 0)
                {
                    // Nothing goes out after the token's expiry, whatever was queued before it: the batch is dropped.
                    var now = Environment.TickCount64;
                    if (session.ExpireIfDue(now)) break;
                    // The no-progress clock of CheckTimeouts: a send pending for Broker:SlowConsumerMs is a slow consumer.
                    session.Clock.SendStarted(now);
                    await session.Transport.SendAsync(buffer.WrittenMemory, batch.Binary, session.Aborted);
                    // A send that waited for the client resumes on the socket event thread (inline socket completions): the
                    // next batch is built on the thread pool.
                    if (InlineSocketCompletions.OnEventThread) await Task.Yield();
                    session.Clock.SendEnded();
                    batch.Sent(buffer.WrittenCount, session);
                    lastWordSent |= closeError;
                }
                buffer.Reset();                                   // back to the pool: an idle session holds no buffer
                if (close)
                {
                    lastWordSent = true;
                    break;
                }
            }
            session.Aborted.ThrowIfCancellationRequested();       // aborted: no last word, no close handshake
            // The backlog was discarded: the last word is why (unless a close's ERROR went out before the cut).
            (string Message, string Detail)? last = lastWordSent ? null
                : session.IsExpired ? ("token expired", ExpiredDetail)
                : session.Outbox.IsSlow ? ("slow consumer", "the client did not read its messages fast enough") : null;
            if (last is { } word)
            {
                var error = session.BuildError(word.Message, null, word.Detail);
                if (error is not null)
                {
                    await session.Transport.SendAsync(error, binary: false, session.Aborted);
                    session.Services.Metrics.FramesSent(1, error.Length, messages: 0);
                    session.Services.Metrics.FrameSent(StompCommand.Error);
                }
            }
            await session.Transport.CloseAsync(session.Reason ?? DisconnectReason.ClientClosed, session.Aborted);
        }
        catch (OperationCanceledException) { }
        catch (WebSocketException) { }
        catch (ObjectDisposedException) { }
        catch (IOException) { }
        catch (Exception ex)
        {
            if (InlineSocketCompletions.OnEventThread) await Task.Yield();   // a send that resumed on the event thread failed
            session.WriterFailed(ex);                             // nobody awaits this task: say it, and end the session
        }
        finally
        {
            buffer.Dispose();
            if (!waiting) session.WriterEnded();                  // whatever ended it, the session's end must not wait forever
        }
    }

    /// <summary>Tests and benchmarks: does what the writer loop does with everything queued, minus the transport.</summary>
    public static int Drain(BrokerSession session, IBufferWriter<byte> output)
    {
        var batch = new OutboundBatch();
        while (session.Outbox.TryRead(out var item)) batch.Add(item, output, session);
        session.Outbox.ReleaseDrainedIfBelowLowWater();
        return batch.Frames;
    }
}
