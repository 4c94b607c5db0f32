using WsBroker.Broker.Sessions;
using WsBroker.Protocol;

namespace WsBroker.Broker.Tests.Sessions;

public class TransactionBufferTests
{
    private static StompFrame Send(string body) => new(StompCommand.Send, new StompHeaders().Add("destination", "/topic/a"), System.Text.Encoding.UTF8.GetBytes(body));

    [Fact]
    public void Commit_GivesTheFramesInArrivalOrder_AndForgetsTheTransaction()
    {
        var buffer = new TransactionBuffer(maxTransactions: 4, maxFramesPerTransaction: 8);
        Assert.Null(buffer.Begin("tx"));
        Assert.Null(buffer.Add("tx", Send("1")));
        Assert.Null(buffer.Add("tx", Send("2")));
        Assert.True(buffer.TryEnd("tx", out var frames));
        Assert.Equal(["1", "2"], frames.Select(f => f.BodyText));
        Assert.False(buffer.TryEnd("tx", out _));
        Assert.Equal("unknown transaction", buffer.Add("tx", Send("3")));
    }

    [Theory]
    [InlineData("tx", "transaction already begun")]
    public void Begin_SameNameTwice_IsRefused(string name, string error)
    {
        var buffer = new TransactionBuffer(4, 8);
        Assert.Null(buffer.Begin(name));
        Assert.Equal(error, buffer.Begin(name));
    }

    [Fact]
    public void Limits_TransactionsAndFrames_AreBounded()
    {
        var buffer = new TransactionBuffer(maxTransactions: 2, maxFramesPerTransaction: 1);
        Assert.Null(buffer.Begin("a"));
        Assert.Null(buffer.Begin("b"));
        Assert.Equal("too many open transactions", buffer.Begin("c"));
        Assert.Null(buffer.Add("a", Send("1")));
        Assert.Equal("too many frames in transaction", buffer.Add("a", Send("2")));
        Assert.Equal("unknown transaction", buffer.Add("nope", Send("1")));
    }

    [Fact]
    public void EndAll_HandsOverEveryOpenTransaction()
    {
        var buffer = new TransactionBuffer(4, 8);
        buffer.Begin("a");
        buffer.Begin("b");
        buffer.Add("b", Send("x"));
        var all = buffer.EndAll();
        Assert.Equal(2, all.Length);
        Assert.Equal(1, all.Sum(f => f.Count));
        Assert.Equal(0, buffer.Count);
    }
}
