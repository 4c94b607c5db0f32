#!/usr/bin/env bash
# Cluster (issue 15), side by side in one run: one node vs two nodes with every message crossing nodes (--cross), same
# tool, same parameters, alternating 1-node and 2-node runs so that drift of the machine lands on both sides:
#   pairs (closed loop), rate 5,000/s, fanout to 1,000 subscribers; p50/p99, throughput, and the backplane's messages per
#   AMQP publish (wsbroker_backplane_messages_total{direction="out"} / wsbroker_backplane_publishes_total, scraped from
#   every node's /metrics before and after each run), and the nodes' CPU during it.
# Then failover: client1..3 and admin1 chat over both nodes of the 2-node cluster and node 1 (the owner of every
# conversation shard: it started first) is killed -9 under that load (load/Failover.cs).
# Both clusters run in cluster mode on MariaDB and RabbitMQ on 127.0.0.1 (scripts/services-up.sh), each with a fresh
# database (dropped at the end), an exchange and user-event queues of its own. Loopback only.
# Usage: load/cluster.sh [out-folder (default docs/perf/issue-15)] [rounds (default 2)]
# Writes <out>/report.md (environment, the runs' table, backplane table), <out>/runs.jsonl (a JSON line per run),
# <out>/<label>-<scenario>.json and PNG plots of the last run of each.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/perf/issue-15}
rounds=${2:-2}
mkdir -p "$out"
rm -f "$out/report.md" "$out/runs.jsonl"
dotnet build -c Release -nologo -clp:ErrorsOnly src/Broker >/dev/null || exit 1
dotnet build -c Release -nologo -clp:ErrorsOnly load >/dev/null || exit 1
work=$(mktemp -d)
server="Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker"
key=cluster-measurement-signing-key-0123456789abcdef
tag=$$
one_db=wsbroker_perf1_$tag; two_db=wsbroker_perf2_$tag
declare -A pid=()
cleanup() {
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 40); do
    alive=0; for p in "${pid[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.5
  done
  mariadb -uwsbroker -pwsbroker -h127.0.0.1 -e "drop database if exists $one_db; drop database if exists $two_db" || true
  rm -rf "$work"
}
trap cleanup EXIT

# start_node <cluster> <node-id> <port> <database>: a cluster node on 127.0.0.1:<port>, ready (database, bus, backplane
# up, demo users known) before it returns.
start_node() {
  local name=$1 id=$2 port=$3 db=$4
  dotnet src/Broker/bin/Release/net10.0/WsBroker.Broker.dll --urls "http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning \
    --Storage:Provider=MySql "--ConnectionStrings:MySql=$server;Database=$db" --Bus:Transport=RabbitMq --Bus:Host=127.0.0.1 \
    "--Bus:QueueName=$name-users" --Bus:QueueExpiresMs=60000 --Cluster:Enabled=true "--Cluster:Exchange=$name" "--Broker:NodeId=$id" \
    "--Auth:SigningKey=$key" --Chat:DemoUsers=true --Chat:DevTokens=true --Chat:MessagesPerSecond=1000000 --Chat:MessageBurst=1000000 \
    >"$work/$name-$id.log" 2>&1 &
  pid[$port]=$!
  disown                                                         # no job report when failover kills it
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && \
      curl -sf -X POST -H 'content-type: application/json' -d '{"userId":"admin1"}' "http://127.0.0.1:$port/api/dev/token" >/dev/null && return 0
    sleep 0.5
  done
  echo "cluster.sh: node $id of $name on port $port did not get ready:" >&2; cat "$work/$name-$id.log" >&2; exit 1
}

# metric <port> <series-regex>: the sum of the matching series on that node's /metrics (0 when absent).
metric() { curl -sf "http://127.0.0.1:$1/metrics" | grep -E "^$2" | awk '{s+=$NF} END {printf "%d", s}'; }
# cpu <port>: user+system CPU ticks of that node's process so far.
cpu() { awk '{print $14+$15}' "/proc/${pid[$1]}/stat"; }
hz=$(getconf CLK_TCK)

mariadb -uwsbroker -pwsbroker -h127.0.0.1 -e "create database $one_db; create database $two_db" || exit 1
start_node "wsbroker-perf1-$tag" 1 8111 "$one_db"
start_node "wsbroker-perf2-$tag" 1 8121 "$two_db"              # first: it owns every conversation shard
start_node "wsbroker-perf2-$tag" 2 8122 "$two_db"
one=(--url ws://127.0.0.1:8111/ws --label 1-node); one_ports=(8111)
two=(--url ws://127.0.0.1:8121/ws --url ws://127.0.0.1:8122/ws --cross --label 2-nodes-cross); two_ports=(8121 8122)

# The load generator runs at a higher priority (and its pacing thread as SCHED_FIFO, see load/Pacer.cs), as in compare.sh.
prio=""; nice -n -10 true 2>/dev/null && prio="nice -n -10"
load="$prio dotnet load/bin/Release/net10.0/WsBroker.Load.dll"
backplane="$work/backplane.md"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# run <side> <scenario> <args...>: one run against cluster <side> (one|two), its JSON line to runs.jsonl and a row of the
# backplane table: messages out, AMQP publishes, their ratio, and the nodes' CPU (cores) over the run.
run() {
  local side=$1; shift
  declare -n args=$side ports=${side}_ports
  local out0=0 pub0=0 cpu0=0 out1=0 pub1=0 cpu1=0 p start end
  for p in "${ports[@]}"; do
    out0=$((out0 + $(metric "$p" 'wsbroker_backplane_messages_total\{direction="out"')))
    pub0=$((pub0 + $(metric "$p" 'wsbroker_backplane_publishes_total'))); cpu0=$((cpu0 + $(cpu "$p")))
  done
  start=$(date +%s.%N)
  echo "+ $load $* ${args[*]}" >&2
  $load "$@" "${args[@]}" --dev-tokens --out "$out" --no-progress | tee /dev/stderr | { grep '^{' || true; } >> "$out/runs.jsonl"
  end=$(date +%s.%N)
  for p in "${ports[@]}"; do
    out1=$((out1 + $(metric "$p" 'wsbroker_backplane_messages_total\{direction="out"')))
    pub1=$((pub1 + $(metric "$p" 'wsbroker_backplane_publishes_total'))); cpu1=$((cpu1 + $(cpu "$p")))
  done
  awk -v l="${args[*]: -1}" -v s="$1" -v m=$((out1 - out0)) -v n=$((pub1 - pub0)) -v c=$((cpu1 - cpu0)) -v hz="$hz" -v t0="$start" -v t1="$end" \
    'BEGIN { printf "| %s | %s | %d | %d | %s | %.2f |\n", l, s, m, n, (n ? sprintf("%.1f", m / n) : "-"), c / hz / (t1 - t0) }' >> "$backplane"
  sleep 2
}

for round in $(seq 1 "$rounds"); do
  for side in one two; do run $side pairs --pairs 20 --inflight 10 --size 128 --warmup 2s --duration 10s; done
  for side in one two; do run $side rate --pairs 10 --rate 5000 --size 128 --warmup 2s --duration 10s; done
  for side in one two; do run $side fanout --subscribers 1000 --rate 50 --size 128 --warmup 1s --duration 5s; done
done

# Failover on the 2-node cluster: node 1 (port 8121) dies 7 s into the load; admin1 and client2 are on it.
failover=(--url ws://127.0.0.1:8121/ws --url ws://127.0.0.1:8122/ws --label 2-nodes)
echo "+ $load failover ${failover[*]}" >&2
$load failover "${failover[@]}" --pairs 3 --rate 500 --inflight 20 --size 128 --warmup 2s --duration 15s \
  --kill-pid "${pid[8121]}" --kill-after 7s --dev-tokens --out "$out" --no-progress | tee /dev/stderr | { grep '^{' || true; } >> "$out/runs.jsonl"
failover_rc=${PIPESTATUS[0]}
unset "pid[8121]"

table=$(cat "$out/report.md")
{
  echo "# Cluster: one node vs two nodes, all traffic crossing (issue 15)"
  echo
  echo "load/cluster.sh, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src load || echo ' + uncommitted changes')."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average before the runs $load_before,"
  echo "after $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: other people's work runs on it too). Every broker node, MariaDB,"
  echo "RabbitMQ and the load tool share these cores: two nodes here measure the cost of crossing, not the gain of a second machine."
  echo
  echo "1-node: a cluster of one node (cluster mode, MariaDB, RabbitMQ backplane) with every connection on it."
  echo "2-nodes-cross: two nodes of one cluster, --cross: pairs and rate send from node 1 to receivers on node 2 (pairs both ways),"
  echo "fanout publishes on node 1 to 1,000 subscribers on node 2. failover: see load/Failover.cs; exit code $failover_rc."
  echo
  echo "$table"
  echo
  echo "Node logs (level Warning and up): $(for f in "$work"/*.log; do printf '%s %s warn, %s fail; ' "$(basename "$f" .log)" \
    "$(grep -c '^warn:' "$f")" "$(grep -c -E '^(fail|crit):' "$f")"; done)"
  echo
  echo "## Backplane (every node's /metrics before and after each run)"
  echo
  echo "| broker | scenario | messages out | AMQP publishes | messages per publish | nodes' CPU (cores) |"
  echo "|---|---|---:|---:|---:|---:|"
  cat "$backplane"
} > "$out/report.md"
grep -h -A3 -E '^(fail|crit):' "$work"/*.log | head -40 >&2
echo "wrote $out/report.md and $out/runs.jsonl"
exit "$failover_rc"
