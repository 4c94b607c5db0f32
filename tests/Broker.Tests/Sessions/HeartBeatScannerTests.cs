using WsBroker.Broker.Options;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Tests.Sessions;

public sealed class HeartBeatScannerTests
{
    /// <summary>An in-memory transport whose keep-alive tick throws (as a broken transport or plug-in might), or counts.</summary>
    private sealed class TickedTransport(bool throws) : WrappedTransport
    {
        public int Ticks { get; private set; }

        public override void KeepAlive(long nowMs)
        {
            Ticks++;
            if (throws) throw new InvalidOperationException("keep-alive broke");
        }
    }

    [Fact]
    public void Scan_ASessionWhoseChecksThrow_IsDropped_AndTheOthersAreStillChecked()
    {
        var services = SessionServices.Create(new BrokerOptions(), "scanner-signing-key-0123456789abcdefghijklmn");
        var transport = new TickedTransport(throws: true);
        var broken = new StompSession(transport, services, "broken", null);
        var next = new TickedTransport(throws: false);
        var after = new StompSession(next, services, "after", null);
        services.Sessions.Add(broken);
        services.Sessions.Add(after);

        var (failed, first) = HeartBeatScanner.Scan(services.Sessions, Environment.TickCount64);   // nothing due

        Assert.Equal(1, failed);
        Assert.Equal("keep-alive broke", Assert.IsType<InvalidOperationException>(first).Message);
        Assert.Equal(DisconnectReason.TransportError, broken.Reason);
        Assert.True(transport.Inner.Aborted);
        Assert.Equal(1, next.Ticks);                                        // the scan went on past the broken one
        Assert.Null(after.Reason);
    }
}
