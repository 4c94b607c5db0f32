#!/usr/bin/env bash
# Side-by-side: WsBroker (once per WebSocket transport, WSBROKER_TRANSPORTS, default "Pipeline AspNetCore") and RabbitMQ
# Web-STOMP, same tool, same parameters, same session, loopback only.
# Usage: load/compare.sh [out-folder]   (default docs/perf). Needs root for scripts/webstomp-up.sh on a fresh machine.
# Writes <out>/report.md (one row per run), <out>/runs.jsonl (a JSON line per run), <out>/<broker>-<scenario>.json and
# PNG plots of the last run of each scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/perf}
mkdir -p "$out"
rm -f "$out/report.md" "$out/runs.jsonl"
scripts/webstomp-up.sh
dotnet build -c Release -nologo -clp:ErrorsOnly src/Broker >/dev/null
dotnet build -c Release -nologo -clp:ErrorsOnly load >/dev/null
data=$(mktemp -d)
# One WsBroker per WebSocket transport (WSBROKER_TRANSPORTS, default both: issue 17 compares them in one run), on
# 8090, 8092, ...; each is labelled WsBroker-<transport>.
read -r -a transports <<<"${WSBROKER_TRANSPORTS:-Pipeline AspNetCore}"
declare -A pids=() ports=()
port=8090
for t in "${transports[@]}"; do
  dotnet src/Broker/bin/Release/net10.0/WsBroker.Broker.dll --urls "http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning \
    --Broker:DiagnosticsEndpoints=true --Chat:MessagesPerSecond=1000000 --Chat:MessageBurst=1000000 "--Broker:Transport=$t" \
    "--ConnectionStrings:Sqlite=Data Source=$data/wsbroker-$t.db" >"$data/broker-$t.log" 2>&1 &
  pids[$t]=$!; ports[$t]=$port; port=$((port + 2))
done
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$data"' EXIT
for t in "${transports[@]}"; do
  for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:${ports[$t]}/healthz" >/dev/null && break; sleep 0.5; done
done
beam=$(pgrep -f 'beam.smp.*rabbit' | head -n 1)
# The load generator runs at a higher priority (and its pacing thread as SCHED_FIFO, see load/Pacer.cs) so that on this
# 2-core machine the scheduler's wake-up delays land less in the latency it measures for either broker.
prio=""; nice -n -10 true 2>/dev/null && prio="nice -n -10"
load="$prio dotnet load/bin/Release/net10.0/WsBroker.Load.dll"
rmq=(--url ws://127.0.0.1:15674/ws --login guest --passcode guest --label RabbitMQ --out "$out" --no-progress)
run() { echo "+ $*" >&2; "$@" | tee /dev/stderr | { grep '^{' || true; } >> "$out/runs.jsonl"; sleep 2; }
for target in "${transports[@]}" rmq; do
  if [ "$target" = rmq ]; then
    args=("${rmq[@]}"); pid=$beam
  else
    args=(--url "ws://127.0.0.1:${ports[$target]}/ws" --dev-tokens --label "WsBroker-$target" --out "$out" --no-progress); pid=${pids[$target]}
  fi
  run $load pairs --pairs 20 --inflight 10 --size 128 --warmup 2s --duration 10s "${args[@]}"
  for _ in 1 2; do run $load rate --pairs 10 --rate 10000 --size 128 --warmup 2s --duration 10s "${args[@]}"; done
  for _ in 1 2 3; do run $load rate --pairs 10 --rate 5000 --size 128 --warmup 2s --duration 10s "${args[@]}"; done
  run $load fanout --subscribers 1000 --rate 50 --size 128 --warmup 1s --duration 5s "${args[@]}"
  if [ "$target" != rmq ]; then
    run $load idle --connections 1000 --duration 5s --pid "$pid" --gc-url "http://127.0.0.1:${ports[$target]}/debug/gc" "${args[@]}"
    run $load chat --pairs 3 --inflight 50 --size 128 --warmup 2s --duration 10s "${args[@]}"
  else
    run $load idle --connections 1000 --duration 5s --pid "$pid" "${args[@]}"
  fi
done

# The floor under WsBroker's memory per connection: bare Kestrel + WebSocket (tools/ws-baseline), same GC settings.
dotnet build -c Release -nologo -clp:ErrorsOnly tools/ws-baseline >/dev/null
dotnet tools/ws-baseline/bin/Release/net10.0/WsBaseline.dll --urls http://127.0.0.1:8091 --Logging:LogLevel:Default=Warning >/dev/null 2>&1 &
baseline=$!
trap 'kill "${pids[@]}" $baseline 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 60); do curl -sf -X POST http://127.0.0.1:8091/debug/gc >/dev/null && break; sleep 0.5; done
run $load idle --connections 1000 --duration 5s --pid "$baseline" --gc-url http://127.0.0.1:8091/debug/gc \
  --url ws://127.0.0.1:8091/ws --login any --passcode any --label Kestrel-baseline --out "$out" --no-progress
