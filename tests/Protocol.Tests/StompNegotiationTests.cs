namespace WsBroker.Protocol.Tests;

public class StompNegotiationTests
{
    [Theory]
    [InlineData("1.2", StompVersion.V1_2)]
    [InlineData("1.0,1.1,1.2", StompVersion.V1_2)]
    [InlineData("1.2,1.0", StompVersion.V1_2)]
    [InlineData("1.0,1.1,2.0", StompVersion.V1_1)]
    [InlineData("1.0", StompVersion.V1_0)]
    [InlineData(" 1.1 , 3.0", StompVersion.V1_1)]
    public void TryNegotiate_CommonVersion_PicksTheHighest(string header, StompVersion expected)
    {
        Assert.True(StompVersions.TryNegotiate(System.Text.Encoding.ASCII.GetBytes(header), headerPresent: true, out var version));
        Assert.Equal(expected, version);
    }

    [Theory]
    [InlineData("")]
    [InlineData("2.0")]
    [InlineData("1.3,1")]
    [InlineData("v12.stomp")]
    public void TryNegotiate_NoCommonVersion_Fails(string header) =>
        Assert.False(StompVersions.TryNegotiate(System.Text.Encoding.ASCII.GetBytes(header), headerPresent: true, out _));

    [Fact]
    public void TryNegotiate_HeaderMissing_Is10()
    {
        Assert.True(StompVersions.TryNegotiate([], headerPresent: false, out var version));
        Assert.Equal(StompVersion.V1_0, version);
    }

    [Theory]
    [InlineData(StompVersion.V1_0, "1.0", "v10.stomp")]
    [InlineData(StompVersion.V1_1, "1.1", "v11.stomp")]
    [InlineData(StompVersion.V1_2, "1.2", "v12.stomp")]
    public void Version_HeaderAndSubProtocol(StompVersion version, string header, string subProtocol)
    {
        Assert.Equal(header, version.ToHeaderValue());
        Assert.Equal(subProtocol, version.ToSubProtocol());
    }

    [Theory]
    [InlineData("0,0", 0, 0)]
    [InlineData("4000,5000", 4000, 5000)]
    [InlineData(" 10 , 20 ", 10, 20)]
    [InlineData("2147483647,0", int.MaxValue, 0)]
    public void HeartBeatTryParse_Valid(string header, int outgoing, int incoming)
    {
        Assert.True(StompHeartBeat.TryParse(System.Text.Encoding.ASCII.GetBytes(header), out var heartBeat));
        Assert.Equal(new StompHeartBeat(outgoing, incoming), heartBeat);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1000")]
    [InlineData(",")]
    [InlineData("1,")]
    [InlineData(",1")]
    [InlineData("-1,0")]
    [InlineData("0,-5")]
    [InlineData("a,b")]
    [InlineData("1,2,3")]
    [InlineData("1.5,2")]
    [InlineData("99999999999,1")]
    [InlineData("+10,+10")]
    [InlineData("-0,0")]
    public void HeartBeatTryParse_Invalid(string header) =>
        Assert.False(StompHeartBeat.TryParse(System.Text.Encoding.ASCII.GetBytes(header), out _));

    [Theory]
    // client cx,cy / server sx,sy -> server sends every max(sx,cy), expects every max(cx,sy); 0 on either side = off
    [InlineData(0, 0, 10000, 10000, 0, 0)]
    [InlineData(5000, 20000, 10000, 10000, 20000, 10000)]
    [InlineData(30000, 1000, 10000, 10000, 10000, 30000)]
    [InlineData(1000, 1000, 0, 10000, 0, 10000)]
    [InlineData(1000, 1000, 10000, 0, 10000, 0)]
    public void HeartBeatNegotiate_PerSpec(int cx, int cy, int sx, int sy, int send, int receive) =>
        Assert.Equal((send, receive), StompHeartBeat.Negotiate(new StompHeartBeat(cx, cy), new StompHeartBeat(sx, sy)));

    [Fact]
    public void HeartBeat_ToString_IsHeaderForm() => Assert.Equal("10000,5000", new StompHeartBeat(10000, 5000).ToString());

    [Fact]
    public void Commands_WireNamesRoundTrip()
    {
        foreach (var command in Enum.GetValues<StompCommand>().Where(c => c != StompCommand.None))
        {
            Assert.True(StompCommands.TryParse(StompCommands.GetName(command), out var parsed));
            Assert.Equal(command, parsed);
            Assert.NotEqual(command.IsClientCommand(), command.IsServerCommand());
        }
        Assert.Equal(["SEND", "MESSAGE", "ERROR"], Enum.GetValues<StompCommand>().Where(c => c.MayHaveBody()).Select(c => c.ToWireString()));
    }
}
