using System.Collections;
using System.ComponentModel;
using System.Globalization;
using System.Net;
using System.Reflection;
using Microsoft.AspNetCore.Http;

namespace WsBroker.Broker.Hosting;

/// <summary>
/// Checks the configuration before the host is built, so that a mistake is reported by name, as a
/// <see cref="BrokerConfigurationException"/>, instead of surfacing as a framework exception at start: listen addresses
/// that Kestrel cannot parse, log levels that do not exist, and keys under our own sections that no options type has
/// (a typo such as <c>Cluster__Enabled</c> would otherwise be ignored silently).
/// </summary>
public static class StartupValidation
{
    /// <summary>The sections that are ours: every key under them must be a setting of the type bound from them.</summary>
    public static readonly IReadOnlyList<string> OwnSections = ["Broker", "Storage", "Bus", "Chat", "Auth", "Acl", "Cluster"];

    private static readonly string[] s_logLevels = Enum.GetNames<LogLevel>();

    /// <summary>Throws <see cref="BrokerConfigurationException"/> with one failure per problem found.</summary>
    public static void Validate(IConfiguration configuration, IEnumerable<OptionsSection> sections)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var bound = sections.ToDictionary(s => s.Name, s => s.OptionsType, StringComparer.OrdinalIgnoreCase);
        var failures = new List<string>();
        ListenAddresses(configuration["urls"], failures);
        LogLevels(configuration.GetSection("Logging"), failures);
        foreach (var name in OwnSections)
        {
            var section = configuration.GetSection(name);
            if (bound.TryGetValue(name, out var type)) Walk(section, type, failures);
            else foreach (var child in section.GetChildren()) failures.Add($"{child.Path} is not a known setting");
        }
        if (failures.Count > 0) throw new BrokerConfigurationException(failures);
    }

    // Kestrel parses each ';'-separated address with BindingAddress.Parse and then builds an IPEndPoint from its port.
    private static void ListenAddresses(string? urls, List<string> failures)
    {
        if (string.IsNullOrWhiteSpace(urls)) return;
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                var address = BindingAddress.Parse(url);
                if (!address.IsNamedPipe && !address.IsUnixPipe && address.Port is < IPEndPoint.MinPort or > IPEndPoint.MaxPort)
                    failures.Add($"Urls: '{url}': the port must be between {IPEndPoint.MinPort} and {IPEndPoint.MaxPort}");
            }
            catch (FormatException ex)
            {
                failures.Add($"Urls: '{url}': {ex.Message}");
            }
        }
    }

    // Logging:LogLevel:<category> and Logging:<provider>:LogLevel:<category> must name a LogLevel.
    private static void LogLevels(IConfigurationSection logging, List<string> failures)
    {
        foreach (var (key, value) in logging.AsEnumerable())
        {
            if (value is null) continue;
            var parts = key.Split(ConfigurationPath.KeyDelimiter);
            var isLevel = parts.Length >= 3 && (parts[1].Equals("LogLevel", StringComparison.OrdinalIgnoreCase)
                || parts.Length >= 4 && parts[2].Equals("LogLevel", StringComparison.OrdinalIgnoreCase));
            if (isLevel && !Enum.TryParse<LogLevel>(value, ignoreCase: true, out _))
                failures.Add($"Logging:LogLevel: Configuration value '{value}' is not supported at '{key}' (use {string.Join(", ", s_logLevels)})");
        }
    }

    // Every child of `section` must be a public settable property of `type` (case-insensitive, as configuration is), and
    // its value must convert to the property's type the way ConfigurationBinder converts it.
    private static void Walk(IConfigurationSection section, Type type, List<string> failures)
    {
        foreach (var child in section.GetChildren())
        {
            var property = type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null || !property.CanWrite && !IsCollection(property.PropertyType))
            {
                failures.Add($"{child.Path} is not a known setting");
                continue;
            }
            Value(child, property.PropertyType, failures);
        }
    }

    private static void Value(IConfigurationSection section, Type type, List<string> failures)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        if (IsScalar(underlying))
        {
            foreach (var child in section.GetChildren()) failures.Add($"{child.Path} is not a known setting");
            if (!string.IsNullOrEmpty(section.Value) && !Converts(section.Value, underlying))
            {
                failures.Add(underlying.IsEnum
                    ? $"{section.Path}: '{section.Value}' is not one of {string.Join(", ", Enum.GetNames(underlying))}"
                    : $"Failed to convert configuration value '{section.Value}' at '{section.Path}' to type '{underlying.FullName}'");
            }
            return;
        }
        if (ElementType(underlying) is { } element)
        {
            foreach (var item in section.GetChildren()) Value(item, element, failures);   // list index or dictionary key
            return;
        }
        Walk(section, underlying, failures);
    }

    private static bool IsScalar(Type type) =>
        type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan)
        || type == typeof(DateTime) || type == typeof(DateTimeOffset) || type == typeof(Guid) || type == typeof(Uri);

    private static bool IsCollection(Type type) => ElementType(type) is not null;

    // T for T[], List<T>, IEnumerable<T>…; TValue for a dictionary keyed by string.
    private static Type? ElementType(Type type)
    {
        if (type == typeof(string)) return null;
        if (type.IsArray) return type.GetElementType();
        var dictionary = type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IDictionary<,>)
            ? type : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>));
        if (dictionary is not null) return dictionary.GetGenericArguments()[1];
        if (!typeof(IEnumerable).IsAssignableFrom(type)) return null;
        var enumerable = type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IEnumerable<>)
            ? type : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>));
        return enumerable?.GetGenericArguments()[0];
    }

    private static bool Converts(string value, Type type)
    {
        if (type.IsEnum) return Enum.TryParse(type, value, ignoreCase: true, out _);
        try
        {
            TypeDescriptor.GetConverter(type).ConvertFromString(null, CultureInfo.InvariantCulture, value);
            return true;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or NotSupportedException or OverflowException)
        {
            return false;
        }
    }
}
