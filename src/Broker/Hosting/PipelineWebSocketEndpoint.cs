using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Options;
using WsBroker.Broker.Options;
using WsBroker.Broker.Sessions;
using WsBroker.Broker.Transport;

namespace WsBroker.Broker.Hosting;

/// <summary>
/// The WebSocket endpoint on Kestrel's connection layer (<c>Broker:Transport=Pipeline</c>): connection middleware on every
/// listen endpoint. It peeks at the first request of each connection without consuming it; a WebSocket upgrade to <c>/ws</c>
/// or <c>/ws/topic/…</c> (<see cref="UpgradeRequest"/>) is answered here (101, or the refusal <see cref="WebSocketAdmission"/>
/// decides) and its session runs over a <see cref="PipeWebSocketTransport"/> on the connection's own pipes, with no HTTP
/// context, request or response objects kept for the connection's life. Every other connection (REST, health, metrics, the
/// web pages, anything unusual) goes on to Kestrel's HTTP layer with its bytes untouched.
/// </summary>
public sealed partial class PipelineWebSocketEndpoint(BrokerServices services, WebSocketAdmission admission, IOptions<KestrelServerOptions> kestrel,
    ConnectionLimits limits, ConnectionRefusals refusals, ILogger<PipelineWebSocketEndpoint> logger)
{
    private readonly KestrelServerLimits _limits = kestrel.Value.Limits;
    private int _http;                                              // connections not (yet) upgraded: the HTTP share

    /// <summary>Connections counted against the HTTP share now (tests).</summary>
    internal int HttpConnectionsForTests => Volatile.Read(ref _http);

    /// <summary>Puts the endpoint in front of a listen endpoint's HTTP layer when <c>Broker:Transport</c> is
    /// <c>Pipeline</c> (set as Kestrel's endpoint default, so it covers every <c>--urls</c> address).</summary>
    public static void Use(ListenOptions listen)
    {
        var provider = listen.ApplicationServices;
        if (provider.GetRequiredService<IOptions<BrokerOptions>>().Value.Transport != BrokerTransport.Pipeline) return;
        var endpoint = provider.GetRequiredService<PipelineWebSocketEndpoint>();
        listen.Use(next => connection => endpoint.HandleAsync(connection, next));
    }

    /// <summary>One connection: counted against the HTTP share until it is upgraded (<see cref="ConnectionLimits.Http"/>;
    /// past it the connection is closed at once, as Kestrel does with its own limit, which is off on this transport), then
    /// either handed to the HTTP layer or run as a session. Once upgraded, the connection's task is its session's run itself
    /// (unwrapped): no frame of this endpoint waits with it for the connection's life (136 bytes of every idle one).</summary>
    public Task HandleAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        if (Interlocked.Increment(ref _http) > limits.Http)
        {
            Interlocked.Decrement(ref _http);
            refusals.HttpRefused();
            return Task.CompletedTask;                              // Kestrel closes the socket
        }
        return StartAsync(connection, next).Unwrap();
    }

    // What runs the connection after its first request: the HTTP layer, the session, or nothing (refused or gone).
    private async Task<Task> StartAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        (bool Ours, BrokerSession? Session) accepted;
        try
        {
            accepted = await AcceptAsync(connection);
        }
        catch
        {
            Interlocked.Decrement(ref _http);
            throw;
        }
        if (!accepted.Ours) return HttpAsync(connection, next);
        Interlocked.Decrement(ref _http);                           // upgraded, refused, or gone
        if (accepted.Session is not { } session) return Task.CompletedTask;
        // The session ends with its transport's finish (the client's close reply, bounded: BrokerSession.EndAsync).
        return admission.RunOnItsPlace(session);
    }

    // The HTTP layer's connection holds its place until it ends, or until it is upgraded there (an upgrade this endpoint
    // left to the HTTP layer: on TLS, as a keep-alive connection's second request, to a path it does not read): Kestrel
    // gives the place back through the feature, as its own count does, so an upgraded connection never holds an HTTP place
    // (an HTTP/2 connection carrying WebSockets stays an HTTP connection, and keeps it).
    private async Task HttpAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        var place = new HttpPlace(this);
        connection.Features.Set<IDecrementConcurrentConnectionCountFeature>(place);
        try
        {
            await next(connection);
        }
        finally
        {
            place.ReleaseConnection();                              // its HTTP life is over
        }
    }

    /// <summary>A connection's place in the HTTP share, given back once.</summary>
    private sealed class HttpPlace(PipelineWebSocketEndpoint endpoint) : IDecrementConcurrentConnectionCountFeature
    {
        private int _released;

        public void ReleaseConnection()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) Interlocked.Decrement(ref endpoint._http);
        }
    }

    // Peeks at the first request; for an upgrade that is ours, answers it and makes its session (null: refused or gone).
    private async Task<(bool Ours, BrokerSession? Session)> AcceptAsync(ConnectionContext connection)
    {
        UpgradeRequest? request;
        try
        {
            request = await PeekAsync(connection.Transport.Input);
        }
        catch (Exception ex) when (ex is IOException or ConnectionAbortedException)
        {
            return (true, null);                                    // gone before its first request
        }
        return request is null ? (false, null) : (true, await UpgradeAsync(connection, request));
    }

    // Reads until the first request's head decides; null: not ours (nothing consumed). Bounded by Kestrel's limits and
    // header timeout (past it the connection is dropped).
    private async Task<UpgradeRequest?> PeekAsync(PipeReader input)
    {
        var maxBytes = (int)Math.Min(int.MaxValue, _limits.MaxRequestLineSize + _limits.MaxRequestHeadersTotalSize);
        CancellationTokenSource? timeout = null;
        long searched = 0;                                        // of the head, for its end (each byte once)
        try
        {
            while (true)
            {
                if (!input.TryRead(out var read))
                {
                    timeout ??= new CancellationTokenSource(_limits.RequestHeadersTimeout);
                    try
                    {
                        read = await input.ReadAsync(timeout.Token);
                    }
                    catch (OperationCanceledException) when (timeout.IsCancellationRequested)
                    {
                        // Silent, or a request head that never ends: the socket is closed (Broker:ConnectTimeoutMs, see
                        // ConnectionLimits), it does not get the HTTP layer's own timeout on top.
                        throw new ConnectionAbortedException("no request within the header timeout");
                    }
                }
                var peek = UpgradeRequest.Peek(read.Buffer, maxBytes, _limits.MaxRequestHeaderCount, out var request, out var end, searched);
                if (peek == UpgradePeek.Ours)
                {
                    input.AdvanceTo(end);
                    return request;
                }
                if (peek == UpgradePeek.NotOurs || read.IsCompleted)
                {
                    input.AdvanceTo(read.Buffer.Start);                // consumed and examined nothing: Kestrel reads it all again
                    return null;
                }
                input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                searched = read.Buffer.Length;
            }
        }
        finally
        {
            timeout?.Dispose();
        }
    }

    // Holds a place for the WebSocket (or refuses it) while the upgrade is judged and answered: given back when no session
    // is made (before a refusal goes out, so that a client retrying at once finds it free), else once the session runs
    // (StartAsync).
    private async Task<BrokerSession?> UpgradeAsync(ConnectionContext connection, UpgradeRequest request)
    {
        if (admission.TryHold() is { } full) return await RefuseAsync(connection.Transport.Output, full);
        (BrokerSession? Session, UpgradeRefusal? Refused) opened = default;
        try
        {
            opened = await OpenAsync(connection, request);
        }
        finally
        {
            if (opened.Session is null) admission.Release();
        }
        return opened.Refused is { } refusal ? await RefuseAsync(connection.Transport.Output, refusal) : opened.Session;
    }

    // Judges the upgrade; answers 101 and makes its session, or says why not (neither: the connection is gone).
    private async Task<(BrokerSession? Session, UpgradeRefusal? Refused)> OpenAsync(ConnectionContext connection, UpgradeRequest request)
    {
        var output = connection.Transport.Output;
        string? subProtocol = null;
        RawTopicAdmission? raw = null;
        UpgradeRefusal? refused;
        if (request.RawPath is null) refused = WebSocketAdmission.ChooseSubProtocol(request.Protocols, out subProtocol);
        else
        {
            var token = request.Query("access_token") ?? WebSocketAdmission.BearerOf(request.Authorization);
            try
            {
                (raw, refused) = await admission.AdmitRawAsync(request.RawPath, request.Query("since"), token);
            }
            catch (Exception ex)
            {
                // The access policy's store failed or timed out, say (no token of ours is passed in, so a cancellation is
                // theirs too): the client is told, as ASP.NET Core's pipeline would tell it.
                Log.AdmissionFailed(logger, ex, connection.ConnectionId);
                refused = new UpgradeRefusal(StatusCodes.Status500InternalServerError, "upgrade not judged", "the broker could not judge this upgrade; retry later");
            }
        }
        if (refused is not null) return (null, refused);
        try
        {
            UpgradeResponses.WriteSwitchingProtocols(output, request.Key, subProtocol);
            await output.FlushAsync();
        }
        catch (Exception ex) when (ex is IOException or ConnectionAbortedException or InvalidOperationException)
        {
            return (null, null);
        }
        var transport = new PipeWebSocketTransport(connection, TimeSpan.FromMilliseconds(services.Options.SlowConsumerMs));
        if (services.Options.InlineSocketCompletions) InlineSocketCompletions.TryEnable(connection);
        BrokerSession session;
        if (raw is null) session = new StompSession(transport, services, services.Sessions.NextSessionId(), request.Query("access_token"));
        else
        {
            var (interval, timeout) = admission.RawKeepAlive;
            transport.StartKeepAlive(interval, timeout);
            session = new RawTopicSession(transport, services, services.Sessions.NextSessionId(), raw.Destination, raw.Principal, raw.Since);
        }
        Log.Upgraded(logger, connection.ConnectionId, session.SessionId);
        return (session, null);
    }

    // Answers the upgrade with its refusal (problem details, Connection: close); null: no session.
    private static async Task<BrokerSession?> RefuseAsync(PipeWriter output, UpgradeRefusal refusal)
    {
        try
        {
            UpgradeResponses.WriteRefusal(output, refusal);
            await output.FlushAsync();
        }
        catch (Exception ex) when (ex is IOException or ConnectionAbortedException or InvalidOperationException) { }
        return null;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 110, Level = LogLevel.Debug, Message = "connection {ConnectionId} upgraded to WebSocket session {SessionId}")]
        public static partial void Upgraded(ILogger logger, string connectionId, string sessionId);

        [LoggerMessage(EventId = 111, Level = LogLevel.Error, Message = "connection {ConnectionId}: judging its WebSocket upgrade failed")]
        public static partial void AdmissionFailed(ILogger logger, Exception exception, string connectionId);
    }
}
