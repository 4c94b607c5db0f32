namespace WsBroker.Protocol;

/// <summary>Why a byte stream is not a valid STOMP frame. Each maps to one client-safe message.</summary>
public enum StompParseError : byte
{
    None = 0,
    /// <summary>The command line is not a STOMP command.</summary>
    UnknownCommand,
    /// <summary>A header line has no colon or an empty name.</summary>
    MalformedHeader,
    /// <summary>A backslash not followed by r, n, c or \ (STOMP 1.2 treats this as a fatal protocol error).</summary>
    InvalidEscape,
    /// <summary>A command or header line is longer than <see cref="StompLimits.MaxHeaderLineBytes"/>.</summary>
    HeaderLineTooLong,
    /// <summary>More headers than <see cref="StompLimits.MaxHeaderCount"/>.</summary>
    TooManyHeaders,
    /// <summary>A content-length that is not a non-negative decimal integer.</summary>
    InvalidContentLength,
    /// <summary>A body longer than <see cref="StompLimits.MaxBodyBytes"/>.</summary>
    BodyTooLarge,
    /// <summary>A whole frame longer than <see cref="StompLimits.MaxFrameBytes"/>.</summary>
    FrameTooLarge,
    /// <summary>The octet after a content-length body is not NUL.</summary>
    MissingNul,
    /// <summary>A body on a frame that must not have one (only SEND, MESSAGE and ERROR may).</summary>
    BodyNotAllowed,
    /// <summary>A header is not valid UTF-8.</summary>
    InvalidUtf8,
}

/// <summary>Client-safe texts for <see cref="StompParseError"/>, used as the ERROR frame's <c>message</c> header.</summary>
public static class StompParseErrors
{
    /// <summary>A short message for the ERROR frame.</summary>
    public static string ToMessage(this StompParseError error) => error switch
    {
        StompParseError.None => "no error",
        StompParseError.UnknownCommand => "unknown command",
        StompParseError.MalformedHeader => "malformed header",
        StompParseError.InvalidEscape => "invalid header escape sequence",
        StompParseError.HeaderLineTooLong => "header line too long",
        StompParseError.TooManyHeaders => "too many headers",
        StompParseError.InvalidContentLength => "invalid content-length",
        StompParseError.BodyTooLarge => "body too large",
        StompParseError.FrameTooLarge => "frame too large",
        StompParseError.MissingNul => "frame not terminated by NUL after content-length octets",
        StompParseError.BodyNotAllowed => "frame must not have a body",
        StompParseError.InvalidUtf8 => "header is not valid UTF-8",
        _ => "malformed frame",
    };
}
