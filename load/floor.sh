#!/usr/bin/env bash
# The machine's floor for issue 17's targets (load/floor/floor.c): a one-thread C epoll server and client over loopback
# TCP doing the same traffic as load/connections.sh with no broker, no WebSocket and no STOMP: N connections held with a
# 1-byte beat each way every 10 s (the server's CPU while they idle), the connect rate for three request/reply round trips
# per connection, and one 150-byte message to every connection twice a second for 10 s (p50/p99 of its delivery).
# WsBroker's numbers on the same machine cannot beat these; docs/performance.md compares them.
# Needs gcc. Usage: load/floor.sh [--connections <n> (19000)] [--hold <seconds> (60)] [--port <n> (8180)] [--sources <n> (4)]
set -uo pipefail
cd "$(dirname "$0")/.."
connections=19000; hold=60; port=8180; sources=4
while [ $# -gt 0 ]; do
  case $1 in
    --connections) connections=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --sources) sources=$2; shift 2 ;;
    *) echo "floor.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v gcc >/dev/null || { echo "floor.sh: needs gcc (apt-get install gcc)" >&2; exit 1; }
if ss -Hltn "sport = :$port" | grep -q .; then echo "floor.sh: port $port is in use (--port)" >&2; exit 1; fi
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
gcc -O2 -Wall -o "$work/floor" load/floor/floor.c || exit 1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_server: a fresh server each run, so that every run starts from no connections.
start_server() {
  "$work/floor" server "$port" 10000 2>>"$work/server.log" &
  server=$!
  for _ in $(seq 1 50); do ss -Hltn "sport = :$port" | grep -q . && return 0; sleep 0.1; done
  echo "floor.sh: the server did not listen" >&2; exit 1
}
stop_server() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=""; }

echo "floor: $connections connections over $sources source addresses, $(nproc) cores, $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# idle: the server's CPU over the hold, after the connect phase.
start_server
timeout $(( hold + 200 )) "$work/floor" client "$port" "$connections" idle "$hold" "$sources" 10000 > "$work/idle.txt" &
client=$!
for _ in $(seq 1 1200); do grep -q '^connected=' "$work/idle.txt" && break; sleep 0.1; done
c0=$(cpu "$server"); t0=$(date +%s.%N)
# The client prints its result at the end of the hold, then waits 2 s before its sockets close.
for _ in $(seq 1 $(( (hold + 200) * 10 ))); do grep -q '^held=' "$work/idle.txt" && break; kill -0 "$client" 2>/dev/null || break; sleep 0.1; done
c1=$(cpu "$server"); t1=$(date +%s.%N)
wait "$client"
stop_server
echo "idle:    $(tr '\n' ' ' < "$work/idle.txt")server_cpu_pct_of_core=$(awk -v c=$((c1 - c0)) -v k="$tick" -v t="$(echo "$t1 - $t0" | bc)" 'BEGIN { printf "%.2f", 100 * c / k / t }')"

# connect: the rate alone (a fresh server).
start_server
timeout 200 "$work/floor" client "$port" "$connections" connect 0 "$sources" 0 > "$work/connect.txt"
stop_server
echo "connect: $(cat "$work/connect.txt")"

# fanout: one message to every connection, twice a second for 10 s.
start_server
timeout 220 "$work/floor" client "$port" "$connections" fanout 10 "$sources" 0 > "$work/fanout.txt"
stop_server
echo "fanout:  $(tr '\n' ' ' < "$work/fanout.txt")"
cat "$work/server.log" >&2
