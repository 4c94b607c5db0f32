namespace WsBroker.Broker.Destinations;

/// <summary>The client-facing texts of <see cref="DestinationError"/> (the ERROR frame's <c>message</c>).</summary>
public static class DestinationErrors
{
    public static string ToMessage(this DestinationError error) => error switch
    {
        DestinationError.Missing => "missing destination header",
        DestinationError.TooLong => "invalid destination: longer than 512 characters",
        DestinationError.NotAbsolute => "invalid destination: destination must start with '/'",
        DestinationError.EmptySegment => "invalid destination: destination has an empty segment",
        DestinationError.PartialWildcard => "invalid destination: '*' and '#' must be whole segments",
        DestinationError.HashNotLast => "invalid destination: '#' is only allowed as the last segment",
        DestinationError.Unknown => "unknown destination: use /topic/... or /user/queue/...",
        _ => "invalid destination",
    };
}
