namespace WsBroker.UserSync.Tests;

public class PublisherCommandTests
{
    [Fact]
    public void Parse_PublishCreated_ReadsEveryOption()
    {
        var request = PublisherCommand.Parse(["publish", "created", "--id", "c1", "--name", "Ana", "--role", "client", "--version", "7",
            "--host", "mq", "--port", "5673", "--vhost", "v", "--user", "u", "--password", "p"])!;
        Assert.Equal("created", request.Kind);
        Assert.Equal(new UserRow("c1", "Ana", "client", 7), Assert.Single(request.Users));
        Assert.Equal(new BusEndpoint("mq", 5673, "v", "u", "p"), request.Bus);
    }

    [Fact]
    public void Parse_WithoutVersion_UsesNowInMilliseconds()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var user = Assert.Single(PublisherCommand.Parse(["publish", "deleted", "--id", "c1"])!.Users);
        Assert.InRange(user.Version, before, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    [Theory]
    [InlineData("")]
    [InlineData("--help")]
    [InlineData("publish created -h")]
    public void Parse_Help_ReturnsNull(string line) =>
        Assert.Null(PublisherCommand.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)));

    [Theory]
    [InlineData("missing command", "--id", "x")]
    [InlineData("unknown command 'send'", "send")]
    [InlineData("publish needs an event", "publish")]
    [InlineData("unknown event 'renamed'", "publish", "renamed", "--id", "x")]
    [InlineData("--id is required", "publish", "created", "--name", "A", "--role", "client")]
    [InlineData("--name is required", "publish", "created", "--id", "x", "--role", "client")]
    [InlineData("--role is required", "publish", "updated", "--id", "x", "--name", "A")]
    [InlineData("role must be admin or client, not 'boss'", "publish", "created", "--id", "x", "--name", "A", "--role", "boss")]
    [InlineData("version must be a positive whole number, not '-3'", "publish", "created", "--id", "x", "--name", "A", "--role", "client", "--version", "-3")]
    [InlineData("--port must be a number between 1 and 65535, not '99999'", "publish", "deleted", "--id", "x", "--port", "99999")]
    [InlineData("unknown option '--colour'", "publish", "deleted", "--id", "x", "--colour", "red")]
    [InlineData("--id needs a value", "publish", "deleted", "--id")]
    [InlineData("--id given twice", "publish", "deleted", "--id", "a", "--id", "b")]
    [InlineData("--skip-bad does not apply to this command", "publish", "deleted", "--id", "x", "--skip-bad")]
    [InlineData("file not found: nope.csv", "import", "nope.csv")]
    public void Parse_BadArguments_NameTheProblem(string message, params string[] args)
    {
        var ex = Assert.Throws<UsageException>(() => PublisherCommand.Parse(args));
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public async Task Run_BadArguments_ExitsWith2AndAMessage()
    {
        var stderr = new StringWriter();
        Assert.Equal(2, await PublisherCommand.RunAsync(["publish", "created", "--id", "x"], TextWriter.Null, stderr));
        Assert.Contains("--name is required", stderr.ToString());
    }

    [Fact]
    public async Task Run_Help_ExitsWith0AndPrintsUsage()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, await PublisherCommand.RunAsync(["--help"], stdout, TextWriter.Null));
        Assert.Contains("publish created --id <id>", stdout.ToString());
    }

    [Fact]
    public async Task Run_RabbitMqUnreachable_ExitsWith1()
    {
        var stderr = new StringWriter();
        var code = await PublisherCommand.RunAsync(["publish", "deleted", "--id", "x", "--host", "127.0.0.1", "--port", "1"], TextWriter.Null, stderr, TimeSpan.FromSeconds(3));
        Assert.Equal(1, code);
        Assert.Contains("could not publish to RabbitMQ at 127.0.0.1:1", stderr.ToString());
    }

    [Fact]
    public void ReadCsv_QuotedFieldsAndVersions_AreParsed()
    {
        var file = Csv("id,name,role,version\nc1,\"Ana, the \"\"first\"\"\",client,5\na1,Boss,admin,6\n\n");
        var rows = PublisherCommand.ReadCsv(file, skipBad: false, null);
        Assert.Equal([new UserRow("c1", "Ana, the \"first\"", "client", 5), new UserRow("a1", "Boss", "admin", 6)], rows);
    }

    [Fact]
    public void ReadCsv_BadRows_NameTheLine_AndNothingIsKeptUnlessSkipBad()
    {
        var file = Csv("id,name,role\nc1,Ana,client\nc2,Bo,boss\n,Nobody,client\nc1,Dup,client\nc4,\"open,client\n");
        var ex = Assert.Throws<UsageException>(() => PublisherCommand.ReadCsv(file, skipBad: false, null));
        Assert.Contains("line 3: role must be admin or client, not 'boss'", ex.Message);
        Assert.Contains("line 4: id must not be empty", ex.Message);
        Assert.Contains("line 5: id 'c1' appears twice", ex.Message);
        Assert.Contains("line 6: unterminated quote", ex.Message);
        Assert.Contains("nothing was published", ex.Message);
        var warnings = new StringWriter();
        var rows = PublisherCommand.ReadCsv(file, skipBad: true, warnings);
        Assert.Equal(["c1"], rows.Select(r => r.Id));
        Assert.Contains("skipped:", warnings.ToString());
    }

    [Fact]
    public async Task Run_UnusableHost_ExitsWith2()
    {
        var stderr = new StringWriter();
        Assert.Equal(2, await PublisherCommand.RunAsync(["publish", "deleted", "--id", "x", "--host", "a b"], TextWriter.Null, stderr, TimeSpan.FromSeconds(3)));
        Assert.Contains("wsbroker-usersync: --host/--vhost:", stderr.ToString());
    }

    [Fact]
    public void ReadCsv_SpacesAroundQuotedFieldsAndNames_AreTrimmed()
    {
        var rows = PublisherCommand.ReadCsv(Csv("id, name ,role\nc1, \"Smith, J\" ,client\nc2,  Bo  ,client\n"), skipBad: false, null);
        Assert.Equal(["Smith, J", "Bo"], rows.Select(r => r.Name));
    }

    [Fact]
    public void ReadCsv_NotUtf8_IsRejectedNotMangled()
    {
        var file = Path.Combine(Path.GetTempPath(), $"users-{Guid.NewGuid():N}.csv");
        File.WriteAllBytes(file, [.. System.Text.Encoding.ASCII.GetBytes("id,name,role\nc1,Jos"), 0xE9, .. System.Text.Encoding.ASCII.GetBytes(",client\n")]);   // cp1252 é
        var ex = Assert.Throws<UsageException>(() => PublisherCommand.ReadCsv(file, false, null));
        Assert.Contains("not UTF-8 text", ex.Message);
    }

    [Fact]
    public void ReadCsv_WrongHeader_IsRejected()
    {
        var ex = Assert.Throws<UsageException>(() => PublisherCommand.ReadCsv(Csv("user,name\nx,y\n"), false, null));
        Assert.Contains("line 1: header must be id,name,role", ex.Message);
    }

    private static string Csv(string content)
    {
        var file = Path.Combine(Path.GetTempPath(), $"users-{Guid.NewGuid():N}.csv");
        File.WriteAllText(file, content);
        return file;
    }
}
