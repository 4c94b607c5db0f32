using System.Text;
using System.Text.Json;
using WsBroker.Broker.Chat;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Chat;

/// <summary>The inbox's MESSAGE frames and the preview of a last message.</summary>
public class InboxMessagesTests
{
    [Theory]
    [InlineData(5, 5)]
    [InlineData(100, 100)]
    [InlineData(250, 100)]
    public void Preview_CutsAtOneHundredUtf16Units(int length, int expected)
    {
        var text = new string('a', length);
        Assert.Equal(expected, InboxMessages.Preview(text).Length);
        Assert.Equal(expected, InboxMessages.Preview(Encoding.UTF8.GetBytes(text)).Length);
    }

    [Fact]
    public void Preview_NeverSplitsASurrogatePair()
    {
        // 99 letters, then emoji (two UTF-16 units each): the 100th unit would be half of the first emoji.
        var text = new string('a', 99) + string.Concat(Enumerable.Repeat("😀", 10));
        var preview = InboxMessages.Preview(text);
        Assert.Equal(new string('a', 99), preview);
        Assert.Equal(preview, InboxMessages.Preview(Encoding.UTF8.GetBytes(text)));
        var emoji = string.Concat(Enumerable.Repeat("😀", 80));
        Assert.Equal(string.Concat(Enumerable.Repeat("😀", 50)), InboxMessages.Preview(Encoding.UTF8.GetBytes(emoji)));
    }

    [Fact]
    public void Preview_OfALongBodyOfThreeByteCharacters_HasNoReplacementCharacter()
    {
        var text = string.Concat(Enumerable.Repeat("€", 500));
        Assert.Equal(new string('€', 100), InboxMessages.Preview(Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void Delta_CarriesKindPeerAndTheWholeConversation()
    {
        var entry = new InboxEntry("admin1", "client1", "client1") { PeerName = "Carla", LastMessageId = 1234567890123456789, LastSenderId = "client1", Preview = "hi", LastMessageAt = 42, Online = true };
        entry.Unread.Add(1234567890123456789);
        var message = InboxMessages.Delta(new InboxChange(987654321987654321, InboxChangeKind.Conversation, entry));
        Assert.Equal(987654321987654321, message.Id);
        Assert.Equal("/user/queue/inbox", message.Destination);
        var frame = Frame(message);
        Assert.Equal("conversation", frame.Headers["inbox"]);
        Assert.Equal("client1", frame.Headers["peer"]);
        Assert.Equal("1234567890123456789", frame.Headers["last-message-id"]);
        Assert.Equal("987654321987654321", frame.Headers["message-id"]);
        using var json = JsonDocument.Parse(message.BodyMemory);
        Assert.Equal("conversation", json.RootElement.GetProperty("kind").GetString());
        Assert.Equal("987654321987654321", json.RootElement.GetProperty("id").GetString());
        var c = json.RootElement.GetProperty("conversation");
        Assert.Equal("Carla", c.GetProperty("peerName").GetString());
        Assert.Equal("1234567890123456789", c.GetProperty("lastMessageId").GetString());
        Assert.Equal(1, c.GetProperty("unread").GetInt32());
        Assert.True(c.GetProperty("online").GetBoolean());
        Assert.False(c.GetProperty("deleted").GetBoolean());
        Assert.Null(Frame(InboxMessages.Delta(new InboxChange(1, InboxChangeKind.Unread, entry))).Headers["last-message-id"]);
    }

    [Fact]
    public void Snapshot_ListsTheConversationsInTheOrderGiven()
    {
        var a = new InboxEntry("admin1", "client1", "client1") { LastMessageId = 2 };
        var b = new InboxEntry("admin1", "client2", "client2") { LastMessageId = 1 };
        var message = InboxMessages.Snapshot(77, [a, b]);
        Assert.Equal("snapshot", Frame(message).Headers["inbox"]);
        using var json = JsonDocument.Parse(message.BodyMemory);
        Assert.Equal(["client1", "client2"], json.RootElement.GetProperty("conversations").EnumerateArray().Select(e => e.GetProperty("peerId").GetString()));
    }

    private static StompFrame Frame(WsBroker.Broker.Routing.SharedMessage message)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        StompFrameWriter.WriteCommand(buffer, StompCommand.Message);
        message.WriteTail(buffer, StompVersion.V1_2);
        var sequence = new System.Buffers.ReadOnlySequence<byte>(buffer.WrittenMemory);
        Assert.Equal(System.Buffers.OperationStatus.Done, StompFrameParser.TryParse(ref sequence, StompLimits.Default, out var frame, out _));
        return frame!;
    }
}
