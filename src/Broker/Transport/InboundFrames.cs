using System.Buffers;
using System.Runtime.InteropServices;

namespace WsBroker.Broker.Transport;

/// <summary>
/// The client frame and message being read by a <see cref="PipeWebSocketTransport"/>: the order of frames (RFC 6455 §5.4),
/// how much of the frame's payload is left, where its mask stands, and the UTF-8 of a text message (§8.1).
/// Payload bytes are unmasked once: in place in the input buffer when delivered from there (<see cref="Unmask"/>, which
/// remembers how many unconsumed bytes it has done), or while copied out (<see cref="UnmaskCopy"/>).
/// A struct kept in a field of its transport: use it in place.
/// </summary>
internal struct InboundFrames
{
    private long _remaining;                                      // payload bytes of the frame not consumed yet
    private long _ahead;                                          // of those, unmasked in place already
    private uint _mask;
    private int _phase;                                           // mask phase of the first unconsumed payload byte
    private bool _inFrame;
    private bool _final;
    private bool _messageOpen;                                    // a message's last frame has not come yet
    private bool _text;
    private Utf8Validator _utf8;

    /// <summary>A data frame's header was read and its payload is not all consumed.</summary>
    public readonly bool InFrame => _inFrame;

    public readonly long Remaining => _remaining;

    /// <summary>The frame ends its message (FIN).</summary>
    public readonly bool IsFinal => _final;

    /// <summary>False when a text message has an unfinished code point so far.</summary>
    public readonly bool TextComplete => !_text || _utf8.IsComplete;

    /// <summary>§5.4: a continuation continues a message, a text or binary frame starts one, never inside another;
    /// control frames may come between fragments.</summary>
    public readonly bool Accepts(in WebSocketFrameHeader header) =>
        header.IsControl || (header.Opcode == WebSocketOpcode.Continuation) == _messageOpen;

    /// <summary>A data frame begins (its header accepted).</summary>
    public void Start(in WebSocketFrameHeader header)
    {
        if (header.Opcode != WebSocketOpcode.Continuation)
        {
            _text = header.Opcode == WebSocketOpcode.Text;
            _utf8.Reset();
        }
        _messageOpen = !header.Fin;
        _final = header.Fin;
        _remaining = header.PayloadLength;
        _ahead = 0;
        _mask = header.Mask;
        _phase = 0;
        _inFrame = true;
    }

    /// <summary>Bytes of the frame's unconsumed payload already unmasked in place: delivered once, and not consumed.</summary>
    public readonly long Ahead => _ahead;

    /// <summary>Unmasks, in place, the bytes of <paramref name="payload"/> (the frame's unconsumed payload, from its first
    /// unconsumed byte) that are not unmasked yet, and validates them in a text message; false: invalid UTF-8.</summary>
    public bool Unmask(ReadOnlySequence<byte> payload)
    {
        if (_ahead >= payload.Length) return true;
        var phase = (int)((_phase + _ahead) & 3);
        foreach (var segment in payload.Slice(_ahead))
        {
            // The input pipe's memory: ours to change until it is consumed.
            var span = MemoryMarshal.AsMemory(segment).Span;
            phase = WebSocketMask.Apply(span, _mask, phase);
            if (_text && !_utf8.Append(span)) return false;
        }
        _ahead = payload.Length;
        return true;
    }

    /// <summary>Unmasks bytes copied out of the input (they are consumed from the frame); false: invalid UTF-8.</summary>
    public bool UnmaskCopy(Span<byte> copied)
    {
        _phase = WebSocketMask.Apply(copied, _mask, _phase);
        _remaining -= copied.Length;
        return !_text || _utf8.Append(copied);
    }

    /// <summary>The session consumed <paramref name="count"/> bytes delivered in place.</summary>
    public void Consumed(long count)
    {
        _remaining -= count;
        _ahead -= count;
        _phase = (int)((_phase + count) & 3);
    }

    /// <summary>The frame's payload is all consumed. Returns whether it ended its message; <paramref name="invalidText"/>:
    /// that message is text and ends inside a code point.</summary>
    public bool EndFrame(out bool invalidText)
    {
        _inFrame = false;
        invalidText = _final && !TextComplete;
        return _final;
    }
}
