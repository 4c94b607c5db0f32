namespace WsBroker.Broker.Hosting;

/// <summary>A configuration section and the options type bound from it, registered by the part that binds it
/// (<c>services.AddSingleton(new OptionsSection("Chat", typeof(ChatOptions)))</c>): a key under one of our sections that
/// no registered type has is refused at start-up (<see cref="StartupValidation"/>).</summary>
public sealed record OptionsSection(string Name, Type OptionsType);
