namespace WsBroker.Broker.Destinations;

/// <summary>Why a destination was refused.</summary>
public enum DestinationError : byte
{
    None,
    Missing,
    TooLong,
    NotAbsolute,
    EmptySegment,
    PartialWildcard,
    HashNotLast,
    /// <summary>Well formed, but not a family this broker serves (<c>/queue/…</c>, <c>/exchange/…</c>, <c>/topic</c> alone).</summary>
    Unknown,
}

