#!/usr/bin/env bash
# Installs (from Debian packages, if missing) and starts MariaDB and RabbitMQ for the tests, without
# systemd, and exports the WSBROKER_TEST_* variables the integration tests read. Safe to run again when
# they are already running. Source it (test.sh does) to keep the exports, or run it to just start them.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for part in mariadb-up.sh rabbitmq-up.sh; do
  if [ -f "$here/$part" ]; then
    # shellcheck disable=SC1090
    source "$here/$part" || return 1 2>/dev/null || exit 1
  fi
done
true
