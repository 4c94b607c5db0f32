using WsBroker.Broker.Destinations;

namespace WsBroker.Broker.Tests.Destinations;

public class DestinationTests
{
    [Theory]
    [InlineData("/topic/a", DestinationKind.Topic, false, new[] { "topic", "a" })]
    [InlineData("/topic/private-chat/admin1/client1", DestinationKind.Topic, false, new[] { "topic", "private-chat", "admin1", "client1" })]
    [InlineData("/topic/news/*", DestinationKind.Topic, true, new[] { "topic", "news", "*" })]
    [InlineData("/topic/#", DestinationKind.Topic, true, new[] { "topic", "#" })]
    [InlineData("/topic/*/high", DestinationKind.Topic, true, new[] { "topic", "*", "high" })]
    [InlineData("/topic/news.eu", DestinationKind.Topic, false, new[] { "topic", "news.eu" })]
    [InlineData("/user/queue/errors", DestinationKind.UserQueue, false, new[] { "user", "queue", "errors" })]
    [InlineData("/session/token", DestinationKind.Session, false, new[] { "session", "token" })]
    public void Parse_ValidDestination_IsTyped(string text, DestinationKind kind, bool pattern, string[] segments)
    {
        var destination = Destination.Parse(text, out var error);
        Assert.Equal(DestinationError.None, error);
        Assert.NotNull(destination);
        Assert.Equal(text, destination.Text);
        Assert.Equal(kind, destination.Kind);
        Assert.Equal(pattern, destination.IsPattern);
        Assert.Equal(segments, destination.SplitSegments());
    }

    [Theory]
    [InlineData(null, DestinationError.Missing)]
    [InlineData("", DestinationError.Missing)]
    [InlineData("topic/a", DestinationError.NotAbsolute)]
    [InlineData(" /topic/a", DestinationError.NotAbsolute)]
    [InlineData("/topic//a", DestinationError.EmptySegment)]
    [InlineData("/topic/a/", DestinationError.EmptySegment)]
    [InlineData("/topic/", DestinationError.EmptySegment)]
    [InlineData("//", DestinationError.EmptySegment)]
    [InlineData("/", DestinationError.EmptySegment)]
    [InlineData("/topic/news*", DestinationError.PartialWildcard)]
    [InlineData("/topic/*news", DestinationError.PartialWildcard)]
    [InlineData("/topic/a#", DestinationError.PartialWildcard)]
    [InlineData("/topic/**", DestinationError.PartialWildcard)]
    [InlineData("/topic/#/a", DestinationError.HashNotLast)]
    [InlineData("/topic", DestinationError.Unknown)]                 // the family alone names nothing
    [InlineData("/something/interesting", DestinationError.Unknown)]
    [InlineData("/queue/jobs", DestinationError.Unknown)]            // no queue semantics: refused, not served as a topic
    [InlineData("/exchange/amq.topic/a", DestinationError.Unknown)]
    [InlineData("/user/queue", DestinationError.Unknown)]
    [InlineData("/user/other/x", DestinationError.Unknown)]
    [InlineData("/topicx/a", DestinationError.Unknown)]
    [InlineData("/session", DestinationError.Unknown)]
    [InlineData("/session/other", DestinationError.Unknown)]             // one name only
    [InlineData("/session/token/x", DestinationError.Unknown)]
    [InlineData("/session/*", DestinationError.Unknown)]                 // no pattern over it
    public void Parse_MalformedOrUnknown_IsRefusedWithItsReason(string? text, DestinationError expected)
    {
        Assert.Null(Destination.Parse(text, out var error));
        Assert.Equal(expected, error);
        Assert.False(string.IsNullOrEmpty(error.ToMessage()));
    }

    [Fact]
    public void Parse_OverTheLengthLimit_IsRefused()
    {
        Assert.Null(Destination.Parse("/topic/" + new string('a', Destination.MaxLength), out var error));
        Assert.Equal(DestinationError.TooLong, error);
        Assert.NotNull(Destination.Parse("/topic/" + new string('a', Destination.MaxLength - 7), out _));
    }

    [Fact]
    public void Cache_SameBytes_ParsedAndClassifiedOnce()
    {
        var classified = 0;
        var cache = new DestinationCache(d => { classified++; return d.Text.Length; });
        var first = cache.Get("/topic/a"u8, out _);
        var second = cache.Get("/topic/a"u8, out _);
        var third = cache.Get("/topic/a", out _);
        Assert.Same(first, second);
        Assert.Same(first, third);
        Assert.Equal(1, classified);
        Assert.Equal(8, first!.Classification);
    }

    [Fact]
    public void Cache_InvalidBytes_GiveTheReasonAndAreNotKept()
    {
        var cache = new DestinationCache(_ => null);
        Assert.Null(cache.Get("/queue/a"u8, out var error));
        Assert.Equal(DestinationError.Unknown, error);
        Assert.Null(cache.Get("/topic/\u00e9*"u8, out error));
        Assert.Equal(DestinationError.PartialWildcard, error);
    }
}
