namespace WsBroker.Persistence;

/// <summary>Closed until the schema is migrated: the stores refuse to work before that, with a clear error instead of a
/// "no such table" from the database.</summary>
internal sealed class StoreGate
{
    private volatile bool _open;

    public bool IsOpen => _open;

    public void Open() => _open = true;

    public void ThrowIfClosed()
    {
        if (!_open)
            throw new InvalidOperationException("storage is not open yet: it is opened (and migrated) when the host starts; "
                + "outside a host use StoreFactory.CreateAsync");
    }
}
