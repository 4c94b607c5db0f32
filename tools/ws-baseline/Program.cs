using System.Net.WebSockets;
using System.Text;

// Bare Kestrel + WebSocket: accepts a connection, answers CONNECT with CONNECTED and a SUBSCRIBE's receipt with RECEIPT,
// then holds the socket with one pending zero-byte receive (as WsBroker does: no buffer while idle). No routing, no
// sessions. Its memory per idle connection is what Kestrel and the WebSocket protocol cost before any broker code.
var app = WebApplication.CreateSlimBuilder(args).Build();
app.UseWebSockets();
app.MapPost("/debug/gc", () =>
{
    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    GC.WaitForPendingFinalizers();
    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    return Results.Ok(new { heapAfter = GC.GetTotalMemory(false) });
});
app.Map("/ws", async context =>
{
    if (!context.WebSockets.IsWebSocketRequest) { context.Response.StatusCode = 400; return; }
    using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = "v12.stomp" });
    while (socket.State == WebSocketState.Open)
    {
        await socket.ReceiveAsync(Memory<byte>.Empty, context.RequestAborted);
        var buffer = new byte[4096];
        var read = await socket.ReceiveAsync(buffer, context.RequestAborted);
        if (read.MessageType == WebSocketMessageType.Close) break;
        var text = Encoding.UTF8.GetString(buffer, 0, read.Count);
        var reply = text.StartsWith("CONNECT", StringComparison.Ordinal) ? "CONNECTED\nversion:1.2\n\n\0"
            : text.StartsWith("SUBSCRIBE", StringComparison.Ordinal) ? $"RECEIPT\nreceipt-id:{Receipt(text)}\n\n\0" : null;
        if (reply is not null) await socket.SendAsync(Encoding.UTF8.GetBytes(reply), WebSocketMessageType.Text, true, context.RequestAborted);
    }
});
app.Run();

static string Receipt(string frame)
{
    foreach (var line in frame.Split('\n'))
        if (line.StartsWith("receipt:", StringComparison.Ordinal)) return line["receipt:".Length..];
    return "";
}
