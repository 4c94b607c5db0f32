using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using WsBroker.Broker.Routing;

namespace WsBroker.Broker.Chat;

/// <summary>
/// The MESSAGE frames of <c>/user/queue/inbox</c> (docs/design.md §3 "Inbox"): a snapshot
/// (<c>inbox:snapshot</c>, <c>{"kind":"snapshot","id","conversations":[…]}</c>) and one delta per change
/// (<c>inbox:&lt;kind&gt;</c>, <c>peer</c>, <c>{"kind","id","conversation":{…}}</c>; a <c>conversation</c> delta also
/// names its last message in <c>last-message-id</c>). Every conversation is written whole.
/// </summary>
public static class InboxMessages
{
    public const string Destination = "/user/queue/inbox";

    /// <summary>Longest preview of a last message, in UTF-16 code units.</summary>
    public const int PreviewLength = 100;

    /// <summary>Bytes of a UTF-8 body decoded for a preview: they hold more than <see cref="PreviewLength"/> UTF-16 code
    /// units (at most 3 bytes per unit), so a character cut at their end lies past the preview.</summary>
    private const int PreviewBytes = PreviewLength * 3 + 3;

    public static string Wire(InboxChangeKind kind) => kind switch
    {
        InboxChangeKind.Conversation => "conversation",
        InboxChangeKind.Unread => "unread",
        InboxChangeKind.Presence => "presence",
        _ => "user",
    };

    /// <summary>The first <see cref="PreviewLength"/> UTF-16 code units of <paramref name="text"/>, one fewer when the cut
    /// would split a surrogate pair.</summary>
    public static string Preview(string text)
    {
        if (text.Length <= PreviewLength) return text;
        var length = char.IsHighSurrogate(text[PreviewLength - 1]) ? PreviewLength - 1 : PreviewLength;
        return text[..length];
    }

    /// <summary>The preview of a UTF-8 body; only its first bytes are decoded.</summary>
    public static string Preview(ReadOnlySpan<byte> utf8) => Preview(Encoding.UTF8.GetString(utf8[..Math.Min(utf8.Length, PreviewBytes)]));

    public static SharedMessage Snapshot(long id, IEnumerable<InboxEntry> conversations) => Message(id, "snapshot", null, null, json =>
    {
        json.WriteStartArray("conversations");
        foreach (var entry in conversations) Write(json, entry);
        json.WriteEndArray();
    });

    public static SharedMessage Delta(InboxChange change) => Message(change.Id, Wire(change.Kind), change.Entry,
        change.Kind == InboxChangeKind.Conversation ? change.Entry.LastMessageId : null, json =>
        {
            json.WritePropertyName("conversation");
            Write(json, change.Entry);
        });

    private static SharedMessage Message(long id, string kind, InboxEntry? entry, long? lastMessageId, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("kind", kind);
            json.WriteString("id", Text(id));
            write(json);
            json.WriteEndObject();
        }
        List<KeyValuePair<string, string>> headers = [new("inbox", kind), new("content-type", "application/json")];
        if (entry is not null) headers.Add(new("peer", entry.PeerId));
        if (lastMessageId is { } last) headers.Add(new("last-message-id", Text(last)));
        return SharedMessage.Create(id, Destination, headers, buffer.WrittenSpan.ToArray());
    }

    private static void Write(Utf8JsonWriter json, InboxEntry e)
    {
        json.WriteStartObject();
        json.WriteString("peerId", e.PeerId);
        json.WriteString("peerName", e.PeerName);
        json.WriteString("adminId", e.AdminId);
        json.WriteString("clientId", e.ClientId);
        json.WriteString("lastMessageId", Text(e.LastMessageId));      // 64-bit: a string, JavaScript numbers cannot hold it
        json.WriteString("lastSender", e.LastSenderId);
        json.WriteString("preview", e.Preview);
        json.WriteNumber("lastMessageAt", e.LastMessageAt);
        json.WriteNumber("unread", e.Unread.Count);
        json.WriteBoolean("online", e.Online);
        json.WriteBoolean("deleted", e.Deleted);
        json.WriteEndObject();
    }

    private static string Text(long id) => id.ToString(CultureInfo.InvariantCulture);
}
