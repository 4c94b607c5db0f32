using System.Text;
using WsBroker.Broker.Destinations;
using WsBroker.Protocol;

namespace WsBroker.Broker.Sessions;

/// <summary>
/// A STOMP session's transactions (BEGIN, COMMIT, ABORT): a SEND or ACK/NACK that names one waits in a
/// <see cref="TransactionBuffer"/> until COMMIT applies it, in order, or ABORT drops it. Receipts are answered when the
/// frames arrive, except those of SENDs to stored destinations: they are answered once the message is committed to the
/// database, i.e. after COMMIT, and a SEND that never commits is told it was dropped. Made on the session's first BEGIN:
/// most sessions never use one.
/// </summary>
internal sealed class StompTransactions(StompSession session)
{
    private readonly TransactionBuffer _open = new(session.Services.Options.MaxTransactions, session.Services.Options.MaxFramesPerTransaction);

    /// <summary>null when begun; else the ERROR message.</summary>
    public string? Begin(string name) => _open.Begin(name);

    /// <summary>null when buffered; else the ERROR message.</summary>
    public string? Add(string name, StompFrameView frame) => _open.Add(name, frame.ToFrame());

    /// <summary>ABORT: the frames are dropped, the SENDs whose receipt was held told so; null when done, else the ERROR
    /// message.</summary>
    public string? Abort(string name)
    {
        if (!_open.TryEnd(name, out var aborted)) return "unknown transaction";
        AnswerDropped(aborted);
        return null;
    }

    /// <summary>COMMIT: the frames take effect, in order (the held receipts are answered as their messages commit); null
    /// when done, else the ERROR message (the frames before the one that failed stay applied).</summary>
    public async ValueTask<string?> CommitAsync(string name)
    {
        if (!_open.TryEnd(name, out var frames)) return "unknown transaction";
        foreach (var buffered in frames)
        {
            if (buffered.Command == StompCommand.Send)
            {
                await session.SendNowAsync(session.Services.Destinations.Get(buffered.Headers["destination"]!, out _)!, default, buffered);
                continue;
            }
            var headers = buffered.Headers;
            if (!session.Settle(Encoding.UTF8.GetBytes(headers["id"] ?? ""), Encoding.UTF8.GetBytes(headers["message-id"] ?? ""),
                headers["subscription"], out var error))
                return error;
        }
        return null;
    }

    /// <summary>The client disconnects: open transactions end unfinished (STOMP: they are aborted), their held SENDs are
    /// answered as dropped.</summary>
    public void AbortAll()
    {
        foreach (var open in _open.EndAll()) AnswerDropped(open);
    }

    /// <summary>The session has closed: open transactions are dropped, nobody is answered.</summary>
    public void Forget() => _open.EndAll();

    /// <summary>Whether SENDs to <paramref name="destination"/> are stored (a send handler takes them), so their receipt
    /// waits for the commit.</summary>
    public bool HoldsReceipt(Destination destination) => session.Services.FindSendHandler(destination) is not null;

    /// <summary>The receipt a SEND buffered in a transaction still owes: that of a stored destination, not answered when
    /// the frame arrived; null otherwise.</summary>
    public string? HeldReceipt(StompFrame buffered) =>
        buffered.Command == StompCommand.Send && session.Services.Destinations.Get(buffered.Headers["destination"]!, out _) is { } destination
            && HoldsReceipt(destination) ? buffered.Headers["receipt"] : null;

    /// <summary>SENDs to stored destinations in a transaction that will never commit were not answered when they arrived:
    /// each is told it was dropped (with its receipt-id).</summary>
    private void AnswerDropped(List<StompFrame> frames)
    {
        foreach (var dropped in frames)
        {
            if (HeldReceipt(dropped) is { } held) session.SendUserError("could-not-send-message: transaction aborted", held);
        }
    }
}
