using System.Buffers;
using System.Text;
using WsBroker.Broker.Transport;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

/// <summary>The client side of an <see cref="InMemoryTransport"/>: writes wire text, parses the frames the session sent
/// (heart-beats skipped); every wait is bounded.</summary>
internal sealed class InMemoryStompClient(InMemoryTransport transport)
{
    private ReadOnlySequence<byte> _pending = ReadOnlySequence<byte>.Empty;

    public async Task SendAsync(string wire) => await transport.Client.WriteAsync(Encoding.UTF8.GetBytes(wire));

    /// <summary>The next frame the session sent.</summary>
    public async Task<StompFrame> ReceiveAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var buffer = _pending;
            if (StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var frame, out _) == OperationStatus.Done)
            {
                _pending = new ReadOnlySequence<byte>(buffer.ToArray());
                return frame!;
            }
            var message = await transport.Sent.ReadAsync(timeout.Token);
            _pending = new ReadOnlySequence<byte>([.. _pending.ToArray(), .. message.Payload]);
        }
    }

    /// <summary>Every frame the session sent until it closed.</summary>
    public async Task<List<StompFrame>> ReceiveUntilClosedAsync()
    {
        var frames = new List<StompFrame>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await foreach (var message in transport.Sent.ReadAllAsync(timeout.Token))
        {
            var buffer = new ReadOnlySequence<byte>([.. _pending.ToArray(), .. message.Payload]);
            while (StompFrameParser.TryParse(ref buffer, StompLimits.Default, out var frame, out _) == OperationStatus.Done) frames.Add(frame!);
            _pending = new ReadOnlySequence<byte>(buffer.ToArray());
        }
        return frames;
    }
}
