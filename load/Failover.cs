using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace WsBroker.Load;

/// <summary>
/// failover (WsBroker cluster, issue 15): customers client1..3 and admin1 chat over two or more nodes; at --kill-after one
/// node (--kill-pid) is killed -9; its connections reconnect to another node, resume with <c>since:</c> and resend with
/// their <c>client-msg-id</c>. The history read over REST afterwards is the truth every party is compared with.
/// </summary>
internal static class Failover
{
    private const string Admin = "admin1";
    /// <summary>After the senders stop: how long RECEIPTs may take (a conversation whose owner died waits for the next).</summary>
    private static readonly TimeSpan s_drain = TimeSpan.FromSeconds(30);
    /// <summary>After the history is read: how long the parties may take to hold its last message.</summary>
    private static readonly TimeSpan s_settle = TimeSpan.FromSeconds(10);
    private const int MaxHistoryPages = 20_000;

    public static async Task<ScenarioResult> RunAsync(LoadOptions o, RunStats stats, CancellationToken cancellationToken)
    {
        // Hard limit: the run, the drain, the history and the settling, whatever the broker does.
        using var hard = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        hard.CancelAfter(o.Warmup + o.Duration + s_drain + s_settle + TimeSpan.FromSeconds(30));
        var tokens = new Scenarios.TokenSource(o);
        var prefix = "f" + Guid.NewGuid().ToString("N")[..8];        // this run's client-msg-ids: <prefix>-<user>-<n>
        var customers = Enumerable.Range(0, o.Pairs).Select(i => "client" + (i % 3 + 1)).ToArray();
        var conversations = customers.Distinct().ToArray();
        var parties = new List<ChatParty>
        {
            new(o, Admin, (await tokens.ForAsync(Admin))!, $"/topic/private-chat/{Admin}/*",
                [.. conversations.Select(c => $"/topic/private-chat/{Admin}/{c}")], 0, prefix, stats),
        };
        for (var i = 0; i < customers.Length; i++)
        {
            var conversation = $"/topic/private-chat/{Admin}/{customers[i]}";
            parties.Add(new ChatParty(o, customers[i], (await tokens.ForAsync(customers[i]))!, conversation, [conversation], i + 1,
                $"{prefix}c{i}", stats));
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(hard.Token);
        try
        {
            foreach (var party in parties) await party.StartAsync(stop.Token);
            stats.Start(o.Warmup);
            long left = o.Messages;
            var interval = TimeSpan.FromSeconds(parties.Count / (double)o.Rate);
            using var producing = CancellationTokenSource.CreateLinkedTokenSource(hard.Token);
            producing.CancelAfter(o.Warmup + o.Duration);
            var producers = parties.Select(p => p.ProduceAsync(interval, () => Interlocked.Decrement(ref left) >= 0, producing.Token)).ToList();
            var killedAt = await KillAsync(o, hard.Token);
            await Scenarios.SettledAsync(producers);
            var clock = Stopwatch.StartNew();
            while (parties.Any(p => p.PendingCount > 0) && clock.Elapsed < s_drain) await Task.Delay(50, hard.Token);

            var live = await LiveNodeAsync(o, hard.Token);
            var history = new Dictionary<string, List<(long Id, string? ClientMsgId)>>();
            foreach (var c in conversations) history[c] = await HistoryAsync(live, c, (await tokens.ForAsync(Admin))!, prefix, hard.Token);
            clock.Restart();
            while (clock.Elapsed < s_settle && parties.Any(p => p.LastId < Expected(p, history).DefaultIfEmpty(0).Max()))
                await Task.Delay(50, hard.Token);
            stop.Cancel();
            await Scenarios.SettledAsync(parties.Select(p => p.StopAsync()));
            return Account(o, stats, parties, history, killedAt);
        }
        finally
        {
            stop.Cancel();
            await Scenarios.SettledAsync(parties.Select(p => p.StopAsync()));
        }
    }

    /// <summary>What a party should hold: every stored message of this run in the conversations it subscribed to.</summary>
    private static IEnumerable<long> Expected(ChatParty party, Dictionary<string, List<(long Id, string? ClientMsgId)>> history) =>
        party.User == Admin ? history.Values.SelectMany(h => h).Select(m => m.Id) : history[party.User].Select(m => m.Id);

    /// <summary>Waits --kill-after from the start of the load, checks the pid is still a broker node, and kills it -9.
    /// Returns the Stopwatch time of the kill.</summary>
    private static async Task<long> KillAsync(LoadOptions o, CancellationToken cancellationToken)
    {
        await Task.Delay(o.KillAfter!.Value, cancellationToken);
        var pid = o.KillPid!.Value;
        if (LoadOptions.NotABrokerNode(pid) is { } why) throw new InvalidOperationException($"--kill-pid {pid} at the kill: {why}");
        using var process = Process.GetProcessById(pid);
        var killedAt = Stopwatch.GetTimestamp();
        process.Kill();                                              // SIGKILL on Linux: no shutdown, no goodbye to anyone
        return killedAt;
    }

    /// <summary>The first URL whose node answers /healthz (the killed one does not).</summary>
    private static async Task<Uri> LiveNodeAsync(LoadOptions o, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        foreach (var url in o.Urls)
        {
            try
            {
                using var response = await http.GetAsync(new Uri(Scenarios.HttpBase(url), "/healthz"), cancellationToken);
                if (response.IsSuccessStatusCode) return Scenarios.HttpBase(url);
            }
            catch (Exception ex) when ((ex is HttpRequestException or TaskCanceledException) && !cancellationToken.IsCancellationRequested) { }
        }
        throw new InvalidOperationException("no node answers /healthz after the failover");
    }

    /// <summary>This run's messages of admin1/<paramref name="customer"/>, oldest first: pages of 100, newest first on the
    /// wire, until a page holds none of this run's after some did (older runs' messages are not read to the end).</summary>
    private static async Task<List<(long Id, string? ClientMsgId)>> HistoryAsync(Uri node, string customer, string token, string prefix,
        CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(15) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var all = new List<(long, string?)>();
        string? before = null;
        var seenOurs = false;
        for (var page = 0; page < MaxHistoryPages; page++)
        {
            var url = new Uri(node, $"/api/conversations/{Admin}/{customer}/messages?limit=100" + (before is null ? "" : "&before=" + before));
            var json = await http.GetFromJsonAsync<JsonElement>(url, cancellationToken);
            var ours = 0;
            foreach (var m in json.GetProperty("messages").EnumerateArray())
            {
                var clientMsgId = m.TryGetProperty("clientMsgId", out var c) ? c.GetString() : null;
                if (clientMsgId?.StartsWith(prefix, StringComparison.Ordinal) != true) continue;
                ours++;
                all.Add((long.Parse(m.GetProperty("id").GetString()!, CultureInfo.InvariantCulture), clientMsgId));
            }
            before = json.GetProperty("nextBefore").GetString();
            if (before is null || (seenOurs && ours == 0)) break;
            seenOurs |= ours > 0;
        }
        all.Reverse();
        return all;
    }

    /// <summary>Compares what each party sent, was receipted and holds with what the database has.</summary>
    private static ScenarioResult Account(LoadOptions o, RunStats stats, List<ChatParty> parties,
        Dictionary<string, List<(long Id, string? ClientMsgId)>> history, long killedAt)
    {
        var stored = history.Values.SelectMany(h => h).ToList();
        var storedIds = stored.GroupBy(m => m.ClientMsgId!).ToDictionary(g => g.Key, g => g.Select(m => m.Id).ToList());
        var sent = parties.SelectMany(p => p.Produced).ToHashSet();
        var rejected = parties.SelectMany(p => p.RejectedIds).ToHashSet();
        var confirmed = parties.SelectMany(p => p.Confirmed).ToList();
        var notStored = sent.Count(id => !storedIds.ContainsKey(id) && !rejected.Contains(id));
        var notHeld = parties.Sum(p => (long)Expected(p, history).Count(id => !p.Holds(id)));
        var storedTwice = storedIds.Values.Sum(ids => ids.Count - 1);
        var deliveredTwice = parties.Sum(p => p.Duplicates);
        // History is newest first on the wire and reversed here: a page boundary out of id order would show as a step down.
        var historyOutOfOrder = history.Values.Sum(h => h.Zip(h.Skip(1)).Count(pair => pair.Second.Id <= pair.First.Id));
        var receiptWrong = confirmed.Count(c => storedIds.TryGetValue(c.Key, out var ids) && !ids.Contains(c.Value));
        var moved = parties.SelectMany(p => p.Reconnects).Where(r => r.Dropped >= killedAt).ToList();
        if (moved.Count == 0)
            throw new InvalidOperationException($"killing --kill-pid {o.KillPid} dropped no connection: it is not the node of any --url");
        // Kill to the first CONNECTED after it, the slowest connection's (-1: none came back).
        var reconnectMs = moved.Where(r => r.Connected != 0).Select(r => (r.Connected - killedAt) * 1000.0 / Stopwatch.Frequency).DefaultIfEmpty(-1).Max();
        var lost = notStored + notHeld;
        var duplicated = storedTwice + deliveredTwice;
        var extra = new Dictionary<string, double>
        {
            ["urls"] = o.Urls.Count,
            ["stored"] = storedIds.Count,
            ["receipted"] = confirmed.Count,
            ["unreceipted"] = sent.Count - confirmed.Count - rejected.Count,
            ["not_stored"] = notStored,
            ["not_held"] = notHeld,
            ["duplicated"] = duplicated,
            ["stored_twice"] = storedTwice,
            ["delivered_twice"] = deliveredTwice,
            ["out_of_order"] = parties.Sum(p => p.OutOfOrder) + historyOutOfOrder,
            ["receipt_id_mismatch"] = receiptWrong + parties.Sum(p => p.ReceiptMismatches),
            ["rejected"] = rejected.Count,
            ["replay_truncated"] = parties.Sum(p => p.Truncated),
            ["moved_connections"] = moved.Count,
            ["never_back"] = moved.Count(r => r.Connected == 0),
            ["reconnect_ms"] = Math.Round(reconnectMs, 1),
            ["resent"] = parties.Sum(p => p.Resends),
            ["kill_after_s"] = o.KillAfter!.Value.TotalSeconds,
        };
        // sent: the unique client-msg-ids (resends are not counted); delivered: the RECEIPTs after the warm-up.
        return Scenarios.Result(o, stats, parties.Count, lost, extra);
    }
}
