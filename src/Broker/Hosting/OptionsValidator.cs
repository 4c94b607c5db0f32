using Microsoft.Extensions.Options;

namespace WsBroker.Broker.Hosting;

/// <summary>Validates an options type with its own <c>Validate()</c> list of problems (checked at start).</summary>
public sealed class OptionsValidator<T>(Func<T, IEnumerable<string>> validate) : IValidateOptions<T> where T : class
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        var failures = validate(options).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
