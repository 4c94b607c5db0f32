using Microsoft.Extensions.Options;

// The broker host. Invalid configuration ends the process with exit code 2 and one line per problem, naming the option.
if (args.Contains("--healthcheck")) return await HealthCheckAsync();
try
{
    await WsBroker.Broker.BrokerApp.Build(args).RunAsync();
    return 0;
}
catch (OptionsValidationException ex)
{
    foreach (var failure in ex.Failures) Console.Error.WriteLine($"wsbroker: invalid configuration: {failure}");
    return 2;
}
catch (InvalidOperationException ex) when (ex.InnerException is OptionsValidationException inner)
{
    foreach (var failure in inner.Failures) Console.Error.WriteLine($"wsbroker: invalid configuration: {failure}");
    return 2;
}
catch (WsBroker.Broker.Hosting.BrokerConfigurationException ex)
{
    // Listen addresses, log levels, unknown keys under our sections and values of the wrong type: found before start.
    foreach (var failure in ex.Failures) Console.Error.WriteLine($"wsbroker: invalid configuration: {failure}");
    return 2;
}
catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
{
    // The port is taken: not a mistake in the options, but still one clear line.
    Console.Error.WriteLine($"wsbroker: cannot start: {ex.Message}");
    return 1;
}

// Container health check without curl in the image: GET /healthz on the first local listen port.
static async Task<int> HealthCheckAsync()
{
    var urls = Environment.GetEnvironmentVariable("WSBROKER_Urls") ?? Environment.GetEnvironmentVariable("Urls")
        ?? Environment.GetEnvironmentVariable("ASPNETCORE_URLS");
    var port = !string.IsNullOrEmpty(urls)
        ? new Uri(urls.Split(';')[0].Replace("+", "localhost", StringComparison.Ordinal).Replace("*", "localhost", StringComparison.Ordinal)).Port
        : int.TryParse(Environment.GetEnvironmentVariable("ASPNETCORE_HTTP_PORTS")?.Split(';', ',')[0], out var p) ? p
        : new Uri(WsBroker.Broker.BrokerApp.DefaultUrl).Port;
    using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
    try
    {
        using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/healthz"));
        return response.IsSuccessStatusCode ? 0 : 1;
    }
    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
    {
        Console.Error.WriteLine($"wsbroker: health check failed: {ex.Message}");
        return 1;
    }
}
