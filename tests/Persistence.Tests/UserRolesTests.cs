namespace WsBroker.Persistence.Tests;

public class UserRolesTests
{
    [Theory]
    [InlineData("admin", UserRole.Admin)]
    [InlineData("client", UserRole.Client)]
    public void TryParse_KnownText_RoundTripsThroughToWire(string text, UserRole role)
    {
        Assert.True(UserRoles.TryParse(text, out var parsed));
        Assert.Equal(role, parsed);
        Assert.Equal(text, parsed.ToWire());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Admin")]
    [InlineData("CLIENT")]
    [InlineData("administrator")]
    [InlineData(" admin")]
    public void TryParse_AnythingElse_IsFalse(string? text) => Assert.False(UserRoles.TryParse(text, out _));

    [Fact]
    public void ToWire_UndefinedValue_Throws() => Assert.Throws<ArgumentOutOfRangeException>(() => ((UserRole)7).ToWire());
}
