using WsBroker.Protocol;

namespace WsBroker.Protocol.Tests;

public class StompCommandTests
{
    [Fact]
    public void StompCommand_Values_CoverAllFifteenCommands()
    {
        Assert.Equal(16, Enum.GetValues<StompCommand>().Length);
    }
}
