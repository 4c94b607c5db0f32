using System.Globalization;

namespace WsBroker.Protocol;

/// <summary>A STOMP protocol version. The numeric value orders versions.</summary>
public enum StompVersion : byte
{
    V1_0 = 10,
    V1_1 = 11,
    V1_2 = 12,
}

/// <summary>Version negotiation (STOMP 1.2 "Protocol Negotiation").</summary>
public static class StompVersions
{
    /// <summary>Every version this library speaks, as the <c>version</c> header of an ERROR lists them.</summary>
    public const string Supported = "1.0,1.1,1.2";

    /// <summary>The highest version in a comma-separated <c>accept-version</c> header that we support. A missing
    /// header means the client speaks STOMP 1.0. Returns false when there is no common version.</summary>
    public static bool TryNegotiate(ReadOnlySpan<byte> acceptVersion, bool headerPresent, out StompVersion version)
    {
        version = StompVersion.V1_0;
        if (!headerPresent) return true;
        var found = false;
        foreach (var range in acceptVersion.Split((byte)','))
        {
            var token = acceptVersion[range].Trim((byte)' ');
            StompVersion candidate;
            if (token.SequenceEqual("1.2"u8)) candidate = StompVersion.V1_2;
            else if (token.SequenceEqual("1.1"u8)) candidate = StompVersion.V1_1;
            else if (token.SequenceEqual("1.0"u8)) candidate = StompVersion.V1_0;
            else continue;
            if (!found || candidate > version) version = candidate;
            found = true;
        }
        return found;
    }

    /// <summary>The header form of a version: "1.0", "1.1" or "1.2".</summary>
    public static string ToHeaderValue(this StompVersion version) => version switch
    {
        StompVersion.V1_0 => "1.0",
        StompVersion.V1_1 => "1.1",
        StompVersion.V1_2 => "1.2",
        _ => ((int)version / 10).ToString(CultureInfo.InvariantCulture) + "." + ((int)version % 10).ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>The WebSocket subprotocol for a version: "v12.stomp", "v11.stomp" or "v10.stomp".</summary>
    public static string ToSubProtocol(this StompVersion version) => version switch
    {
        StompVersion.V1_0 => "v10.stomp",
        StompVersion.V1_1 => "v11.stomp",
        _ => "v12.stomp",
    };
}
