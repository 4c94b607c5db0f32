#!/usr/bin/env bash
# Before/after for a change that must keep performance: runs the WsBroker rows of load/compare.sh (pairs, rate 10k and
# 5k, fanout to 1,000, idle 1,000, chat) against the broker built from two commits, alternating A B A B so that drift of
# the machine lands on both sides, with the same load tool (this tree's) for both. Loopback only.
# Usage: load/before-after.sh <commit-before> [commit-after (default: the work tree)] [out-folder (default: artifacts/before-after)]
# Writes <out>/runs.jsonl (a JSON line per run, labelled before-1, after-1, before-2, after-2) and <out>/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
before=${1:?usage: load/before-after.sh <commit-before> [commit-after] [out-folder]}
after=${2:-}
out=${3:-artifacts/before-after}
mkdir -p "$out"
rm -f "$out/report.md" "$out/runs.jsonl"
trees=$(mktemp -d)
cleanup() {
  [ -n "${broker:-}" ] && kill "$broker" 2>/dev/null || true
  git -C "$root" worktree remove --force "$trees/before" 2>/dev/null || true
  [ -n "$after" ] && git -C "$root" worktree remove --force "$trees/after" 2>/dev/null || true
  rm -rf "$trees"
}
trap cleanup EXIT
git worktree add -q --detach "$trees/before" "$before"
if [ -n "$after" ]; then git worktree add -q --detach "$trees/after" "$after"; after_tree="$trees/after"; else after_tree="$root"; fi
for tree in "$trees/before" "$after_tree"; do dotnet build -c Release -nologo -clp:ErrorsOnly "$tree/src/Broker" >/dev/null; done
dotnet build -c Release -nologo -clp:ErrorsOnly load >/dev/null
prio=""; nice -n -10 true 2>/dev/null && prio="nice -n -10"
load="$prio dotnet load/bin/Release/net10.0/WsBroker.Load.dll"
run() { echo "+ $*" >&2; "$@" | tee /dev/stderr | { grep '^{' || true; } >> "$out/runs.jsonl"; sleep 2; }
for round in 1 2; do
  for side in before after; do
    tree=$([ "$side" = before ] && echo "$trees/before" || echo "$after_tree")
    data=$(mktemp -d)
    dotnet "$tree/src/Broker/bin/Release/net10.0/WsBroker.Broker.dll" --urls http://127.0.0.1:8090 --Logging:LogLevel:Default=Warning \
      --Broker:DiagnosticsEndpoints=true --Chat:MessagesPerSecond=1000000 --Chat:MessageBurst=1000000 \
      "--ConnectionStrings:Sqlite=Data Source=$data/wsbroker.db" >"$data/broker.log" 2>&1 &
    broker=$!
    for _ in $(seq 1 60); do curl -sf http://127.0.0.1:8090/healthz >/dev/null && break; sleep 0.5; done
    args=(--url ws://127.0.0.1:8090/ws --dev-tokens --label "$side-$round" --out "$out" --no-progress)
    run $load pairs --pairs 20 --inflight 10 --size 128 --warmup 2s --duration 10s "${args[@]}"
    run $load rate --pairs 10 --rate 10000 --size 128 --warmup 2s --duration 10s "${args[@]}"
    run $load rate --pairs 10 --rate 5000 --size 128 --warmup 2s --duration 10s "${args[@]}"
    run $load fanout --subscribers 1000 --rate 50 --size 128 --warmup 1s --duration 5s "${args[@]}"
    run $load idle --connections 1000 --duration 5s --pid "$broker" --gc-url http://127.0.0.1:8090/debug/gc "${args[@]}"
    run $load chat --pairs 3 --inflight 50 --size 128 --warmup 2s --duration 10s "${args[@]}"
    kill "$broker"; wait "$broker" 2>/dev/null || true; broker=""
    rm -rf "$data"
  done
done
echo "wrote $out/runs.jsonl and $out/report.md"
