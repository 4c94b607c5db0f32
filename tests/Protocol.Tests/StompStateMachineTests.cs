using System.Buffers;
using System.Text;

namespace WsBroker.Protocol.Tests;

public class StompStateMachineTests
{
    private static readonly StompHeartBeat s_server = new(10_000, 10_000);

    /// <summary>Feeds wire frames in order and returns the last verdict.</summary>
    private static StompVerdict Feed(StompStateMachine machine, params string[] frames)
    {
        var verdict = default(StompVerdict);
        foreach (var wire in frames)
        {
            var parser = new StompFrameParser(version: machine.Version);
            var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(wire));
            Assert.Equal(OperationStatus.Done, parser.TryParse(ref buffer, out _));
            verdict = machine.Accept(parser.Frame);
        }
        return verdict;
    }

    private static StompStateMachine Connected(string version = "1.2")
    {
        var machine = new StompStateMachine(s_server);
        Assert.True(Feed(machine, $"CONNECT\naccept-version:{version}\nhost:h\n\n\0").IsAccepted);
        return machine;
    }

    private static void Accepted(StompVerdict verdict) => Assert.True(verdict.IsAccepted, verdict.Error);

    private static void Rejected(StompVerdict verdict, string error)
    {
        Assert.False(verdict.IsAccepted);
        Assert.Equal(error, verdict.Error);
    }

    [Fact] public void New_AwaitsConnect() => Assert.Equal(StompState.AwaitingConnect, new StompStateMachine(s_server).State);
    [Fact] public void Connect_First_Connects() => Assert.Equal(StompState.Connected, Connected().State);
    [Fact] public void Stomp_First_Connects() => Accepted(Feed(new StompStateMachine(s_server), "STOMP\naccept-version:1.2\nhost:h\n\n\0"));
    [Fact] public void Send_BeforeConnect_Rejected() => Rejected(Feed(new StompStateMachine(s_server), "SEND\ndestination:/a\n\n\0"), "expected CONNECT or STOMP frame");
    [Fact] public void Connect_Twice_Rejected() => Rejected(Feed(Connected(), "CONNECT\naccept-version:1.2\n\n\0"), "already connected");
    [Fact] public void Stomp_AfterConnect_Rejected() => Rejected(Feed(Connected(), "STOMP\naccept-version:1.2\n\n\0"), "already connected");
    [Fact] public void ServerFrame_FromClient_Rejected() => Rejected(Feed(Connected(), "MESSAGE\ndestination:/a\n\n\0"), "MESSAGE is a server frame");
    [Fact] public void ServerFrame_BeforeConnect_Rejected() => Rejected(Feed(new StompStateMachine(s_server), "CONNECTED\nversion:1.2\n\n\0"), "CONNECTED is a server frame");
    [Fact] public void Disconnect_WhenConnected_ProceedsAndCloses() { var m = Connected(); Accepted(Feed(m, "DISCONNECT\nreceipt:77\n\n\0")); Assert.Equal(StompState.Disconnected, m.State); }
    [Fact] public void Send_AfterDisconnect_Rejected() => Rejected(Feed(Connected(), "DISCONNECT\n\n\0", "SEND\ndestination:/a\n\n\0"), "connection is closing");
    [Fact] public void Connect_AfterDisconnect_Rejected() => Rejected(Feed(Connected(), "DISCONNECT\n\n\0", "CONNECT\naccept-version:1.2\n\n\0"), "connection is closing");

    [Fact] public void Connect_HighestCommonVersion_Negotiated() { var m = Connected("1.0,1.1,2.0"); Assert.Equal(StompVersion.V1_1, m.Version); }
    [Fact] public void Connect_WithoutAcceptVersion_Is10() { var m = new StompStateMachine(s_server); Accepted(Feed(m, "CONNECT\n\n\0")); Assert.Equal(StompVersion.V1_0, m.Version); }
    [Fact] public void Connect_NoCommonVersion_Rejected() => Rejected(Feed(new StompStateMachine(s_server), "CONNECT\naccept-version:2.0,2.1\n\n\0"), "unsupported protocol version; supported versions are 1.0,1.1,1.2");
    [Fact] public void Connect_RejectedVersion_StaysAwaitingConnect() { var m = new StompStateMachine(s_server); Feed(m, "CONNECT\naccept-version:3.0\n\n\0"); Assert.Equal(StompState.AwaitingConnect, m.State); }
    [Fact] public void Connect_InvalidHeartBeat_Rejected() => Rejected(Feed(new StompStateMachine(s_server), "CONNECT\naccept-version:1.2\nheart-beat:abc\n\n\0"), "invalid heart-beat header");
    [Fact] public void Connect_HeartBeat_Negotiated() { var m = new StompStateMachine(s_server); Feed(m, "CONNECT\naccept-version:1.2\nheart-beat:5000,20000\n\n\0"); Assert.Equal((20_000, 10_000), m.HeartBeat); }
    [Fact] public void Connect_NoHeartBeatHeader_NoHeartBeats() => Assert.Equal((0, 0), Connected().HeartBeat);
    [Fact] public void Connect_HeartBeatIn10_Ignored() { var m = new StompStateMachine(s_server); Feed(m, "CONNECT\naccept-version:1.0\nheart-beat:5000,5000\n\n\0"); Assert.Equal((0, 0), m.HeartBeat); }
    [Fact] public void ServerHeartBeat_IsWhatWasOffered() => Assert.Equal(s_server, new StompStateMachine(s_server).ServerHeartBeat);

    [Fact] public void Send_WithDestination_Proceeds() => Accepted(Feed(Connected(), "SEND\ndestination:/a\n\nx\0"));
    [Fact] public void Send_WithoutDestination_Rejected() => Rejected(Feed(Connected(), "SEND\n\nx\0"), "SEND frame has no destination header");
    [Fact] public void Send_EmptyDestination_Rejected() => Rejected(Feed(Connected(), "SEND\ndestination:\n\nx\0"), "SEND frame has no destination header");
    [Fact] public void Subscribe_Complete_Proceeds() => Accepted(Feed(Connected(), "SUBSCRIBE\nid:0\ndestination:/a\n\n\0"));
    [Fact] public void Subscribe_WithoutDestination_Rejected() => Rejected(Feed(Connected(), "SUBSCRIBE\nid:0\n\n\0"), "SUBSCRIBE frame has no destination header");
    [Fact] public void Subscribe_WithoutId_Rejected() => Rejected(Feed(Connected(), "SUBSCRIBE\ndestination:/a\n\n\0"), "SUBSCRIBE frame has no id header");
    [Fact] public void Subscribe_WithoutIdIn10_Proceeds() => Accepted(Feed(Connected("1.0"), "SUBSCRIBE\ndestination:/a\n\n\0"));
    [Theory, InlineData("auto"), InlineData("client"), InlineData("client-individual")]
    public void Subscribe_ValidAckMode_Proceeds(string ack) => Accepted(Feed(Connected(), $"SUBSCRIBE\nid:0\ndestination:/a\nack:{ack}\n\n\0"));
    [Fact] public void Subscribe_UnknownAckMode_Rejected() => Rejected(Feed(Connected(), "SUBSCRIBE\nid:0\ndestination:/a\nack:sometimes\n\n\0"), "invalid ack header; use auto, client or client-individual");
    [Fact] public void Subscribe_ClientIndividualIn10_Rejected() => Assert.False(Feed(Connected("1.0"), "SUBSCRIBE\ndestination:/a\nack:client-individual\n\n\0").IsAccepted);
    [Fact] public void Unsubscribe_WithId_Proceeds() => Accepted(Feed(Connected(), "UNSUBSCRIBE\nid:0\n\n\0"));
    [Fact] public void Unsubscribe_WithoutId_Rejected() => Rejected(Feed(Connected(), "UNSUBSCRIBE\ndestination:/a\n\n\0"), "UNSUBSCRIBE frame has no id header");
    [Fact] public void Unsubscribe_ByDestinationIn10_Proceeds() => Accepted(Feed(Connected("1.0"), "UNSUBSCRIBE\ndestination:/a\n\n\0"));
    [Fact] public void Ack_WithIdIn12_Proceeds() => Accepted(Feed(Connected(), "ACK\nid:1\n\n\0"));
    [Fact] public void Ack_WithoutIdIn12_Rejected() => Rejected(Feed(Connected(), "ACK\nmessage-id:1\nsubscription:0\n\n\0"), "ACK frame has no id header");
    [Fact] public void Nack_WithoutIdIn12_Rejected() => Rejected(Feed(Connected(), "NACK\n\n\0"), "NACK frame has no id header");
    [Fact] public void Ack_In11_NeedsMessageIdAndSubscription() => Accepted(Feed(Connected("1.1"), "ACK\nmessage-id:1\nsubscription:0\n\n\0"));
    [Fact] public void Ack_In11WithoutSubscription_Rejected() => Rejected(Feed(Connected("1.1"), "ACK\nmessage-id:1\n\n\0"), "ACK frame has no subscription header");
    [Fact] public void Ack_In11WithoutMessageId_Rejected() => Rejected(Feed(Connected("1.1"), "ACK\nsubscription:0\n\n\0"), "ACK frame has no message-id header");
    [Fact] public void Ack_In10_NeedsMessageIdOnly() => Accepted(Feed(Connected("1.0"), "ACK\nmessage-id:1\n\n\0"));
    [Fact] public void Nack_In10_Rejected() => Rejected(Feed(Connected("1.0"), "NACK\nmessage-id:1\n\n\0"), "NACK is not part of STOMP 1.0");
    [Theory, InlineData("BEGIN"), InlineData("COMMIT"), InlineData("ABORT")]
    public void Transaction_WithTransactionHeader_Proceeds(string command) => Accepted(Feed(Connected(), $"{command}\ntransaction:tx1\n\n\0"));
    [Theory, InlineData("BEGIN"), InlineData("COMMIT"), InlineData("ABORT")]
    public void Transaction_WithoutTransactionHeader_Rejected(string command) => Rejected(Feed(Connected(), $"{command}\n\n\0"), $"{command} frame has no transaction header");

    [Theory]
    [InlineData("CONNECT\nlogin:u\npasscode:p\n\n\n\0")]                     // STOMP 1.0: no accept-version, body "\n"
    [InlineData("CONNECT\nlogin:u\npasscode:p\n\n\r\n\0")]
    [InlineData("CONNECT\naccept-version:1.0\n\n\n\0")]
    public void Connect_10WithASingleEolBody_Connects(string wire)
    {
        var machine = new StompStateMachine(s_server);
        Accepted(Feed(machine, wire));
        Assert.Equal(StompVersion.V1_0, machine.Version);
        Assert.Equal(StompState.Connected, machine.State);
    }
}
