#!/usr/bin/env bash
# Runs every WsBroker test suite on a fresh Debian machine with the .NET SDK:
#   1. installs and starts MariaDB and RabbitMQ if they are missing (scripts/services-up.sh),
#   2. builds the whole solution,
#   3. runs every xunit project under tests/ and every Node test suite (tests/js, web-js), then the suites about the
#      broker's WebSockets again on the second transport (Broker:Transport=AspNetCore),
#   4. prints one line "N passed, N failed, N skipped" summed over all suites.
# Exits non-zero if a build or a test failed, or if no test ran.
# Usage: ./test.sh [--no-services]   (--no-services: do not install/start MariaDB and RabbitMQ)
set -uo pipefail
cd "$(dirname "$0")"
root=$(pwd)
results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

start_services=1
for arg in "$@"; do
  case "$arg" in
    --no-services) start_services=0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
if [ "$start_services" = 1 ]; then
  # Exports the connection settings the integration tests read (WSBROKER_TEST_*).
  # shellcheck source=scripts/services-up.sh
  if ! source scripts/services-up.sh; then
    echo "test.sh: could not start MariaDB/RabbitMQ (see above)" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

# chromium and docker-compose for the browser and deployment tests, before any test's clock starts.
[ "$start_services" = 1 ] && scripts/test-tools-up.sh

passed=0; failed=0; skipped=0; broken=0

echo "== build"
if ! dotnet build WsBroker.sln -c Release -nologo -clp:ErrorsOnly; then
  echo "test.sh: build failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# Sums the <Counters> of one TRX file into passed/failed/skipped.
count_trx() {
  local trx=$1 line
  line=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  [ -n "$line" ] || return 1
  local p f e n t
  p=$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$line")
  f=$(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$line")
  e=$(sed -E 's/.* error="([0-9]+)".*/\1/' <<<"$line")
  t=$(sed -E 's/.* timeout="([0-9]+)".*/\1/' <<<"$line")
  n=$(sed -E 's/.* notExecuted="([0-9]+)".*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f + e + t)); skipped=$((skipped + n))
}

# run_dotnet <project> <name>: one xunit project, its counters summed from its TRX file.
run_dotnet() {
  local proj=$1 name=$2
  echo "== $name"
  dotnet test "$proj" -c Release --no-build -nologo \
    --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal" \
    --results-directory "$results" 2>&1 | grep -vE '^\s*(Passed|Skipped) '
  local rc=${PIPESTATUS[0]} failed_before=$failed
  if [ -f "$results/$name.trx" ]; then
    count_trx "$results/$name.trx" || { echo "test.sh: $name: unreadable TRX" >&2; broken=$((broken + 1)); }
    # A crashed test host still writes a TRX, with zero counters: a non-zero exit with no failed test is a failure.
    if [ "$rc" != 0 ] && [ "$failed" = "$failed_before" ]; then
      echo "test.sh: $name exited $rc without a failed test (test host crashed or run aborted)" >&2
      broken=$((broken + 1))
    fi
  elif grep -qE '\[(Fact|Theory)' -r "$(dirname "$proj")" --include='*.cs'; then
    echo "test.sh: $name has tests but produced no results (exit $rc)" >&2
    broken=$((broken + 1))
  fi
}

# run_node <dir> <name> [files...]: a Node suite (its package.json "test" script, or node --test on the files given),
# its counters summed from the TAP output.
run_node() {
  local dir=$1 name=$2; shift 2
  echo "== node: $name"
  local out="$results/$name.tap" rc
  # Bounded: a test that leaves a socket or timer behind must not hold the whole run (node waits for them).
  if [ $# -gt 0 ]; then
    (cd "$dir" && timeout --kill-after=10 900 node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=tap "$@") >"$out" 2>&1
  else
    (cd "$dir" && timeout --kill-after=10 900 npm test --silent -- --test-reporter=tap) >"$out" 2>&1
  fi
  rc=$?
  grep -E '^# (tests|pass|fail|skipped|todo|cancelled)' "$out" || true
  grep -E '^not ok' "$out" || true
  local p f c s
  p=$(grep -E '^# pass ' "$out" | tail -n 1 | awk '{print $3}')
  f=$(grep -E '^# fail ' "$out" | tail -n 1 | awk '{print $3}')
  c=$(grep -E '^# cancelled ' "$out" | tail -n 1 | awk '{print $3}')
  s=$(grep -E '^# skipped ' "$out" | tail -n 1 | awk '{print $3}')
  if [ -z "$p" ]; then echo "test.sh: $name printed no summary (exit $rc)" >&2; tail -n 30 "$out"; broken=$((broken + 1)); return; fi
  passed=$((passed + p)); failed=$((failed + ${f:-0} + ${c:-0})); skipped=$((skipped + ${s:-0}))
  if [ "$rc" != 0 ] && [ "${f:-0}" = 0 ] && [ "${c:-0}" = 0 ]; then broken=$((broken + 1)); fi
}

for proj in tests/*.Tests/*.Tests.csproj; do run_dotnet "$proj" "$(basename "$proj" .csproj)"; done

# Node suites: any folder with a package.json whose "test" script runs node --test.
for dir in tests/js web-js; do
  [ -f "$dir/package.json" ] || continue
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || { broken=$((broken + 1)); continue; }
  run_node "$dir" "$(tr / - <<<"$dir")"
done

# The same suites again on the other WebSocket transport (Broker:Transport=AspNetCore; Pipeline is the default): every
# suite that runs a broker's WebSockets, not the ones that are not about it (Protocol, Persistence, UserSync, the load
# tool), nor cluster.test.mjs (cluster nodes on the default) and websocket-rfc6455.test.mjs (the Pipeline framing itself).
export WSBROKER_TEST_TRANSPORT=AspNetCore
run_dotnet tests/Broker.Tests/Broker.Tests.csproj Broker.Tests-AspNetCore
run_node tests/js tests-js-AspNetCore $(cd tests/js && ls ./*.test.mjs | grep -vE '/(cluster|websocket-rfc6455)\.test\.mjs$')
run_node web-js web-js-AspNetCore test/browser.test.mjs
unset WSBROKER_TEST_TRANSPORT

# Why each test failed (a flake seen once in CI must be readable from CI's output): its TAP detail block (40 lines) and
# the test's own diagnostics (10), or its trx message (40); then the failures again, by name, just above the summary.
for tap in "$results"/*.tap; do
  [ -f "$tap" ] || continue
  # A block ends at "..." two spaces in from its "not ok" (a deeper "..." is inside an assertion's diff); the test's own
  # diagnostics ("# ..." at the "not ok"'s indent) follow it.
  awk -v suite="$(basename "$tap" .tap)" '
    /^[[:space:]]*not ok/ { indent = substr($0, 1, match($0, /[^ ]/) - 1); state = 1; lines = 0; notes = 0; print "-- " suite ": " $0; next }
    state == 1 && $0 == indent "  ..." { state = 2; next }
    state == 2 && (index($0, indent "# ") != 1 || index($0, indent "# Subtest: ") == 1 ||
                   $0 ~ /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /) { state = 0 }
    state == 1 && lines < 40 { print "   " $0; lines++ }
    state == 2 && notes < 10 { print "   " $0; notes++ }' "$tap" || true
done
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  awk -v suite="$(basename "$trx" .trx)" '
    /<UnitTestResult / { failed = 0 }
    /<UnitTestResult / && /outcome="Failed"/ { failed = 1; name = $0; sub(/.*testName="/, "", name); sub(/".*/, "", name) }
    failed && /<Message>/ { printing = 1; lines = 0; print "-- " suite ": " name }
    printing && lines < 40 { print "   " $0; lines++ }
    printing && /<\/Message>/ { printing = 0; failed = 0 }' "$trx" || true
done
# The failures again, by name, just above the summary (the suites' own output is long).
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  grep -o '<UnitTestResult [^>]*outcome="Failed"[^>]*>' "$trx" | sed -E 's/.* testName="([^"]*)".*/FAILED: \1/' || true
done
for tap in "$results"/*.tap; do
  [ -f "$tap" ] || continue
  grep -E '^\s*not ok' "$tap" | sed -E 's/^\s*/FAILED: /' || true
done
failed=$((failed + broken))
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
exit 0
