namespace WsBroker.Persistence;

/// <summary>Placeholder until the store lands.</summary>
public static class PersistenceMarker;
