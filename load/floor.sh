#!/usr/bin/env bash
# The machine's floor for issue 17's targets (load/floor/floor.c): a one-thread C epoll server and client over loopback
# TCP doing the same traffic as load/connections.sh with no broker, no WebSocket and no STOMP: N connections held with a
# 1-byte beat each way every 10 s (the server's CPU while they idle), the connect rate for three request/reply round trips
# per connection, and one 150-byte message to every connection twice a second for 10 s (p50/p99 of its delivery).
# WsBroker's numbers on the same machine cannot beat these; docs/performance.md compares them.
# With --broker, the same C client speaks WebSocket and STOMP to a fresh WsBroker instead (one per run, SQLite,
# heart-beats 10,000,10,000): the broker's CPU while the connections idle with beats both ways for the hold, its connect
# rate (upgrade, JWT, CONNECT, SUBSCRIBE with RECEIPT) and the broadcast to all,
# measured with a client that leaves the broker the machine's other core (the .NET load tool takes most of one).
# Needs gcc. Usage: load/floor.sh [--broker] [--runs <n> (1)] [--connections <n> (19000)] [--hold <seconds> (60)]
#                                 [--port <n> (8180)] [--sources <n> (4)]
set -uo pipefail
cd "$(dirname "$0")/.."
connections=19000; hold=60; port=8180; sources=4; broker_mode=0; runs=1
while [ $# -gt 0 ]; do
  case $1 in
    --broker) broker_mode=1; shift ;;
    --runs) runs=$2; shift 2 ;;
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
# What a system call that does nothing costs on this machine, and whether the kernel isolates page tables (which makes
# every call dearer): the floor's and the broker's idle CPU are mostly system calls.
kernel="a null syscall $("$work/floor" syscall | sed 's/syscall_ns=//') ns, meltdown: $(cat /sys/devices/system/cpu/vulnerabilities/meltdown 2>/dev/null || echo unknown)"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_server: a fresh server each run, so that every run starts from no connections.
start_server() {
  "$work/floor" server "$port" 10000 2>>"$work/server.log" &
  server=$!
  for _ in $(seq 1 50); do ss -Hltn "sport = :$port" | grep -q . && return 0; sleep 0.1; done
  echo "floor.sh: the server did not listen" >&2; exit 1
}
stop_server() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=""; }

if [ "$broker_mode" = 1 ]; then
  command -v dotnet >/dev/null || { echo "floor.sh: --broker needs the .NET SDK" >&2; exit 1; }
  dotnet build -c Release -nologo -clp:ErrorsOnly src/Broker >/dev/null || exit 1
  trap '[ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }; rm -rf "$work"' EXIT
  echo "floor --broker: WsBroker at $(git rev-parse --short HEAD 2>/dev/null), $connections connections over $sources source addresses, $(nproc) cores, $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg), $kernel"
  # start_broker: a fresh broker and its own database each run; sets $server and $token.
  start_broker() {
    rm -f "$work"/broker.db*
    dotnet src/Broker/bin/Release/net10.0/WsBroker.Broker.dll --urls "http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning \
      --Broker:HeartBeatSendMs=10000 --Broker:HeartBeatReceiveMs=10000 "--ConnectionStrings:Sqlite=Data Source=$work/broker.db" \
      >>"$work/broker.log" 2>&1 &
    server=$!
    token=""
    for _ in $(seq 1 120); do
      token=$(curl -sf -X POST -H 'content-type: application/json' -d '{"userId":"client1"}' "http://127.0.0.1:$port/api/dev/token" \
        | sed -n 's/.*"token":"\([^"]*\)".*/\1/p') && [ -n "$token" ] && return 0
      kill -0 "$server" 2>/dev/null || break
      sleep 0.5
    done
    echo "floor.sh: the broker did not get ready:" >&2; cat "$work/broker.log" >&2; exit 1
  }
  status=0
  for run in $(seq 1 "$runs"); do
    # idle: the broker's CPU over the hold while every connection beats every 10 s, after the connect phase and before
    # the teardown (the client prints held= and waits 2 s before its sockets close).
    start_broker
    timeout $(( hold + 200 )) "$work/floor" stomp "$port" "$connections" idle "$hold" "$sources" "$token" > "$work/idle.txt" 2>>"$work/client.log" &
    client=$!
    for _ in $(seq 1 1200); do grep -q '^connected=' "$work/idle.txt" && break; kill -0 "$client" 2>/dev/null || break; sleep 0.1; done
    c0=$(cpu "$server"); t0=$(date +%s.%N)
    for _ in $(seq 1 $(( (hold + 200) * 10 ))); do grep -q '^held=' "$work/idle.txt" && break; kill -0 "$client" 2>/dev/null || break; sleep 0.1; done
    c1=$(cpu "$server"); t1=$(date +%s.%N)
    wait "$client" || status=1
    stop_server
    echo "run $run idle: $(tr '\n' ' ' < "$work/idle.txt")broker_cpu_pct_of_core=$(awk -v c=$((c1 - c0)) -v k="$tick" -v t="$(echo "$t1 - $t0" | bc)" 'BEGIN { printf "%.2f", 100 * c / k / t }') (over the hold)"
    for mode in connect fanout; do
      start_broker
      c0=$(cpu "$server")
      timeout 300 "$work/floor" stomp "$port" "$connections" "$mode" 10 "$sources" "$token" > "$work/$mode.txt" 2>>"$work/client.log" || status=1
      c1=$(cpu "$server")
      stop_server
      per=$(awk -v c=$((c1 - c0)) -v k="$tick" -v n="$connections" 'BEGIN { printf "%.0f", 1e6 * c / k / n }')
      echo "run $run $mode: $(tr '\n' ' ' < "$work/$mode.txt")broker_cpu_us_per_connection=$per (the whole run)"
    done
  done
  cat "$work/client.log" >&2
  exit $status
fi

echo "floor: $connections connections over $sources source addresses, $(nproc) cores, $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg), $kernel"

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
