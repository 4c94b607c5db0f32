#!/usr/bin/env bash
# Connections at the machine's limit (issue 17): one WsBroker node, embedded mode (SQLite), heart-beats 10000,10000, the
# diagnostics endpoints on, its open-file limit as high as this shell may raise it. Against it:
#   idle   N connections (one SUBSCRIBE each, heart-beat 10000,10000) held for --hold: how many held, the connect rate,
#          live heap and RSS growth per connection, the broker's CPU while idle (load/IdleScenario.cs);
#   fanout one publisher to N subscribers: p99 of the fan-out delivery.
# With --transport <name> (repeatable) the broker is started once per name with --Broker:Transport=<name> and both runs
# are made against each, so that transports are compared side by side in one run. Loopback only; every run is bounded in
# time; the script stops only the broker it started.
# With --rabbitmq <n>, RabbitMQ Web-STOMP (scripts/webstomp-up.sh) then holds n idle connections the same way, for
# reference: whether it holds them, its RSS per connection and its CPU while idle.
# Usage: load/connections.sh [out-folder (default docs/perf/issue-17)] [--transport <name>]... [--connections <n> (19000)]
#          [--hold <time> (60s)] [--processes <n> (one per 10,000 connections)] [--source-addresses <n> (4)]
#          [--connect-concurrency <n> per process (128)] [--rate <broadcasts/s> (2)] [--port <n> (8170)] [--rabbitmq <n>]
#          [--client lean|system (lean: the tool's own upgrade, see load/LeanWebSocket.cs; it costs the tool far less CPU
#          per connection than ClientWebSocket, which shares the 2 cores with the broker)]
# Writes <out>/report.md (environment and the runs' table), <out>/runs.jsonl (a JSON line per run) and the tool's
# <label>-<scenario>.json of each run.
set -uo pipefail
cd "$(dirname "$0")/.."
out=docs/perf/issue-17; transports=(); rabbitmq=0; client=lean; connections=19000; hold=60s; processes=""; sources=4; concurrency=128; rate=2; port=8170
while [ $# -gt 0 ]; do
  case $1 in
    --transport) transports+=("$2"); shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --processes) processes=$2; shift 2 ;;
    --source-addresses) sources=$2; shift 2 ;;
    --connect-concurrency) concurrency=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --rabbitmq) rabbitmq=$2; shift 2 ;;
    --client) client=$2; shift 2 ;;
    -*) echo "connections.sh: unknown option $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ ${#transports[@]} -eq 0 ] && transports=("")                 # the broker's default transport
processes=${processes:-$(( (connections + 9999) / 10000 ))}
mkdir -p "$out"
rm -f "$out/report.md" "$out/runs.jsonl"
dotnet build -c Release -nologo -clp:ErrorsOnly src/Broker >/dev/null || exit 1
dotnet build -c Release -nologo -clp:ErrorsOnly load >/dev/null || exit 1
if ss -Hltn "sport = :$port" | grep -q .; then echo "connections.sh: port $port is in use (--port)" >&2; exit 1; fi

# Every process here may open as many files as the hard limit allows (20,000 on this machine; it cannot be raised): the
# broker and each process of the load tool inherit this.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d)
broker=""
stop_broker() {
  [ -n "$broker" ] || return 0
  kill "$broker" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$broker" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$broker" 2>/dev/null && kill -9 "$broker" 2>/dev/null
  broker=""
}
trap 'stop_broker; rm -rf "$work"' EXIT

# start_broker <transport>: a fresh broker (its own database) on 127.0.0.1:$port, ready before it returns.
start_broker() {
  local transport=$1 name=${1:-default}
  local args=(--urls "http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning --Broker:DiagnosticsEndpoints=true
    --Broker:HeartBeatSendMs=10000 --Broker:HeartBeatReceiveMs=10000 "--ConnectionStrings:Sqlite=Data Source=$work/$name.db")
  [ -n "$transport" ] && args+=("--Broker:Transport=$transport")
  dotnet src/Broker/bin/Release/net10.0/WsBroker.Broker.dll "${args[@]}" >"$work/broker-$name.log" 2>&1 &
  broker=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && \
      curl -sf -X POST -H 'content-type: application/json' -d '{"userId":"client1"}' "http://127.0.0.1:$port/api/dev/token" >/dev/null && return 0
    kill -0 "$broker" 2>/dev/null || break
    sleep 0.5
  done
  echo "connections.sh: the broker ($name) did not get ready:" >&2; cat "$work/broker-$name.log" >&2; exit 1
}

# The load generator runs at a higher priority, as in compare.sh.
prio=""; nice -n -10 true 2>/dev/null && prio="nice -n -10"
load="$prio dotnet load/bin/Release/net10.0/WsBroker.Load.dll"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
hold_s=$(awk -v h="$hold" 'BEGIN { v = h + 0; if (h ~ /ms$/) v /= 1000; else if (h ~ /m$/) v *= 60; print int(v) + 1 }')
# run <seconds bound> <args...>: one run of the tool, its JSON line to runs.jsonl; killed (by timeout) past the bound.
run() {
  local bound=$1; shift
  echo "+ $load $*" >&2
  timeout --kill-after=30 "$bound" $load "$@" --url "ws://127.0.0.1:$port/ws" --dev-tokens --out "$out" --no-progress \
    | tee /dev/stderr | { grep '^{' || true; } >> "$out/runs.jsonl"
  sleep 2
}

for transport in "${transports[@]}"; do
  label=WsBroker${transport:+-$transport}
  start_broker "$transport"
  # Bounds: the connect phase at 50 connections/s at worst, the hold, the measuring and the children's stop.
  # The idle run's processes of the tool live mostly to connect: without tiered PGO they do not spend a core on
  # instrumented re-JIT meanwhile (about 2,100 -> 2,500-3,000 connects/s at 19,000; docs/performance.md). The fan-out's
  # receive loop is faster with PGO, so only idle runs without it.
  DOTNET_TieredPGO=0 run $(( connections / 50 + hold_s + 300 )) idle --connections "$connections" --heart-beat 10000,10000 --duration "$hold" \
    --processes "$processes" --source-addresses "$sources" --connect-concurrency "$concurrency" --client "$client" \
    --pid "$broker" --gc-url "http://127.0.0.1:$port/debug/gc" --label "$label"
  run $(( connections / 50 + 300 )) fanout --subscribers "$connections" --rate "$rate" --size 128 --warmup 0s --duration 10s \
    --heart-beat 10000,10000 --source-addresses "$sources" --connect-concurrency "$concurrency" --client "$client" --label "$label"
  stop_broker
done

if [ "$rabbitmq" -gt 0 ]; then
  scripts/webstomp-up.sh >&2
  beam=$(pgrep -f 'beam.smp.*rabbit' | head -n 1)
  rprocesses=$(( (rabbitmq + 9999) / 10000 ))
  echo "+ $load idle (RabbitMQ Web-STOMP, $rabbitmq)" >&2
  timeout --kill-after=30 $(( rabbitmq / 50 + hold_s + 300 )) $load idle --connections "$rabbitmq" --heart-beat 10000,10000 \
    --duration "$hold" --processes "$rprocesses" --source-addresses "$sources" --connect-concurrency "$concurrency" --client "$client" --pid "$beam" \
    --url ws://127.0.0.1:15674/ws --login guest --passcode guest --label RabbitMQ --out "$out" --no-progress \
    | tee /dev/stderr | { grep '^{' || true; } >> "$out/runs.jsonl"
fi

table=$(cat "$out/report.md")
{
  echo "# Connections at the machine's limit (issue 17)"
  echo
  echo "load/connections.sh, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src load || echo ' + uncommitted changes')."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); open files per process $(ulimit -n)"
  echo "(hard $(ulimit -Hn)); load average before the runs $load_before, after $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine)."
  echo
  echo "One broker per transport (${transports[*]:-default}; embedded SQLite, heart-beats 10000,10000). idle: $connections connections"
  echo "from $processes process(es) of the tool over $sources source addresses, $concurrency connecting at a time per process, each"
  echo "with one SUBSCRIBE and heart-beat 10000,10000, held $hold. fanout: one publisher at $rate/s for 10 s to $connections subscribers."
  echo "The tool's WebSocket client: --client $client."
  [ "$rabbitmq" -gt 0 ] && echo "RabbitMQ Web-STOMP (Debian's RabbitMQ, scripts/webstomp-up.sh): idle, $rabbitmq connections, the same way."
  echo
  echo "$table"
  echo
  echo "Broker logs (level Warning and up): $(for f in "$work"/broker-*.log; do printf '%s %s warn, %s fail; ' "$(basename "$f" .log)" \
    "$(grep -c '^warn:' "$f")" "$(grep -c -E '^(fail|crit):' "$f")"; done)"
} > "$out/report.md"
grep -h -A3 -E '^(fail|crit):' "$work"/broker-*.log | head -40 >&2
echo "wrote $out/report.md and $out/runs.jsonl"
