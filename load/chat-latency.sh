#!/usr/bin/env bash
# Delivery latency of stored chat messages (issue 14): client1..3 send at 1,000 msg/s in all to admin1, who receives each
# message after its commit; latency from the intended SEND time to the admin's MESSAGE. Loopback only.
# Usage: load/chat-latency.sh sqlite|mysql [out-folder (default docs/perf/issue-14)]
# mysql needs MariaDB on 127.0.0.1:3306 with the test user (scripts/mariadb-up.sh); a fresh database is made and dropped.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${2:-docs/perf/issue-14}
mkdir -p "$out"
dotnet build -c Release -nologo -clp:ErrorsOnly src/Broker >/dev/null && dotnet build -c Release -nologo -clp:ErrorsOnly load >/dev/null
data=$(mktemp -d)
common=(--urls http://127.0.0.1:8093 --Logging:LogLevel:Default=Warning --Chat:MessagesPerSecond=1000000 --Chat:MessageBurst=1000000)
if [ "$1" = mysql ]; then
  db=wsbroker_lat_$RANDOM
  mariadb -uwsbroker -pwsbroker -h127.0.0.1 -e "create database $db"
  extra=(--Storage:Provider=MySql "--ConnectionStrings:MySql=Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=$db"
    --Auth:SigningKey=latency-measurement-signing-key-0123456789 --Chat:DemoUsers=true --Chat:DevTokens=true)
else
  extra=("--ConnectionStrings:Sqlite=Data Source=$data/w.db")
fi
dotnet src/Broker/bin/Release/net10.0/WsBroker.Broker.dll "${common[@]}" "${extra[@]}" > $data/log 2>&1 &
b=$!
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:8093/healthz >/dev/null && break; sleep 0.5; done
sleep 2
nice -n -10 dotnet load/bin/Release/net10.0/WsBroker.Load.dll chat-rate --pairs 3 --rate 1000 --size 128 --warmup 2s --duration 10s \
  --url ws://127.0.0.1:8093/ws --dev-tokens --label "WsBroker-$1" --out "$out" --no-progress 2>&1 | tail -3
kill $b; wait $b 2>/dev/null
[ "$1" = mysql ] && mariadb -uwsbroker -pwsbroker -h127.0.0.1 -e "drop database $db"
rm -rf $data
