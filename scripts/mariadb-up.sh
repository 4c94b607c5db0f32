#!/usr/bin/env bash
# MariaDB for the WsBroker tests: installs mariadb-server from Debian packages if missing, starts it WITHOUT systemd on
# 127.0.0.1:3306, creates the database wsbroker_test and the user wsbroker/wsbroker (all rights on wsbroker% databases),
# waits until it answers, and exports WSBROKER_TEST_MYSQL. Safe to run again when MariaDB is already running.
#   source scripts/mariadb-up.sh        # as test.sh does (keeps the export)
#   scripts/mariadb-up.sh [up|start|stop|status]
# "stop" shuts the server down (the outage test uses stop/start); "start" starts it without the set-up steps.

wsb_mariadb_running() { mariadb-admin --protocol=socket -uroot ping >/dev/null 2>&1; }

wsb_mariadb_start() {
  wsb_mariadb_running && return 0
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/tmp/wsbroker-mariadb-install.log 2>&1 \
      || { echo "mariadb-up: mariadb-install-db failed (see /tmp/wsbroker-mariadb-install.log)" >&2; return 1; }
  fi
  # setsid: the server outlives the shell that started it; its output goes to a log, not to the test run.
  setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
    --pid-file=/run/mysqld/mysqld.pid --port=3306 --bind-address=127.0.0.1 --max-connections=500 \
    --innodb-flush-log-at-trx-commit=1 >>/tmp/wsbroker-mariadb.log 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    wsb_mariadb_running && return 0
    sleep 0.5
  done
  echo "mariadb-up: MariaDB did not answer within 60 s (see /tmp/wsbroker-mariadb.log)" >&2
  return 1
}

wsb_mariadb_stop() {
  wsb_mariadb_running || return 0
  mariadb-admin --protocol=socket -uroot shutdown
  for _ in $(seq 1 60); do
    wsb_mariadb_running || return 0
    sleep 0.5
  done
  return 1
}

wsb_mariadb_up() {
  if [ ! -x /usr/sbin/mariadbd ]; then
    echo "mariadb-up: installing mariadb-server from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    # The package's post-install would start the server with Debian's defaults (and then ours would never apply, the
    # server being up already): service starts are denied while it installs; we start it ourselves below.
    local created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1; fi
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq mariadb-server >/tmp/wsbroker-apt-mariadb.log 2>&1 \
      || { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 \
           && apt-get -o DPkg::Lock::Timeout=600 install -y -qq mariadb-server >/tmp/wsbroker-apt-mariadb.log 2>&1; }
    local rc=$?
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || { echo "mariadb-up: apt-get install mariadb-server failed (see /tmp/wsbroker-apt-mariadb.log)" >&2; return 1; }
  fi
  wsb_mariadb_start || return 1
  mariadb --protocol=socket -uroot <<'SQL' || { echo "mariadb-up: could not create the test database and user" >&2; return 1; }
CREATE DATABASE IF NOT EXISTS wsbroker_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'wsbroker'@'localhost' IDENTIFIED BY 'wsbroker';
CREATE USER IF NOT EXISTS 'wsbroker'@'127.0.0.1' IDENTIFIED BY 'wsbroker';
GRANT ALL PRIVILEGES ON `wsbroker%`.* TO 'wsbroker'@'localhost';
GRANT ALL PRIVILEGES ON `wsbroker%`.* TO 'wsbroker'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
  export WSBROKER_TEST_MYSQL="Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test"
  echo "mariadb-up: MariaDB ready on 127.0.0.1:3306"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-up}" in
    up) wsb_mariadb_up ;;
    start) wsb_mariadb_start ;;
    stop) wsb_mariadb_stop ;;
    status) wsb_mariadb_running && echo running || { echo stopped; exit 1; } ;;
    *) echo "usage: $0 [up|start|stop|status]" >&2; exit 2 ;;
  esac
else
  wsb_mariadb_up
fi
