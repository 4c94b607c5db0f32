#!/usr/bin/env bash
# RabbitMQ for the WsBroker tests: installs rabbitmq-server from Debian packages if missing, starts it WITHOUT systemd
# on 127.0.0.1 (AMQP 5672; guest/guest works on loopback), waits until it answers, exports WSBROKER_TEST_RABBITMQ_HOST.
# Safe to run again when RabbitMQ is already running.
#   source scripts/rabbitmq-up.sh       # as test.sh does (keeps the export)
#   scripts/rabbitmq-up.sh [up|start|stop|status]

# Every Erlang tool this script starts (rabbitmqctl may start epmd) keeps epmd on loopback.
export ERL_EPMD_ADDRESS=127.0.0.1

wsb_rabbitmq_running() { timeout 20 rabbitmqctl -q status >/dev/null 2>&1; }

wsb_rabbitmq_start() {
  # Running may mean still booting (the Erlang node answers before the broker app is up): wait for the app either way.
  if wsb_rabbitmq_running; then
    timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1 && return 0
    # The node is up but its app is stopped (e.g. after `rabbitmqctl stop_app`): start the app, not a second node.
    timeout 60 rabbitmqctl -q start_app >/dev/null 2>&1 && timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1 && return 0
    echo "rabbitmq-up: the RabbitMQ node runs but its broker did not start (see /var/log/rabbitmq)" >&2
    return 1
  fi
  mkdir -p /var/lib/rabbitmq /var/log/rabbitmq && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
  # Loopback only; the node name is fixed so rabbitmqctl finds it whatever the host name is.
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODENAME=rabbit@localhost
  grep -q '^NODENAME=' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null \
    || printf 'NODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\n' >> /etc/rabbitmq/rabbitmq-env.conf
  # RabbitMQ needs a file descriptor per connection. Started through `su rabbitmq` (as the package's wrapper does), it gets
  # pam_limits' soft limit of 1024, sets its "file descriptor limit alarm" and refuses new connections near 1,000 clients.
  # The systemd unit would give it LimitNOFILE=65536; without systemd, rabbitmq-env.conf (sourced by the start script as
  # the rabbitmq user) raises the soft limit to the hard one.
  grep -q '^ulimit' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null \
    || printf 'ulimit -S -n "$(ulimit -H -n)" 2>/dev/null || true\n' >> /etc/rabbitmq/rabbitmq-env.conf
  # Loopback for the Erlang distribution too (port 25672 and epmd's 4369), not only for AMQP.
  grep -q '^SERVER_ADDITIONAL_ERL_ARGS' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null \
    || printf 'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"\nexport ERL_EPMD_ADDRESS=127.0.0.1\n' >> /etc/rabbitmq/rabbitmq-env.conf
  export ERL_EPMD_ADDRESS=127.0.0.1
  setsid rabbitmq-server >>/tmp/wsbroker-rabbitmq.log 2>&1 < /dev/null &
  for _ in $(seq 1 90); do
    if timeout 20 rabbitmqctl -q await_startup >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "rabbitmq-up: RabbitMQ did not answer within 90 s (see /tmp/wsbroker-rabbitmq.log)" >&2
  return 1
}

wsb_rabbitmq_stop() {
  wsb_rabbitmq_running || return 0
  timeout 60 rabbitmqctl -q shutdown >/dev/null 2>&1
}

wsb_rabbitmq_up() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "rabbitmq-up: installing rabbitmq-server from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    # The package's post-install tries to start the service through invoke-rc.d; without systemd that must not hang the
    # install, so service starts are denied while it runs (we start the server ourselves below).
    local created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1; fi
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq rabbitmq-server >/tmp/wsbroker-apt-rabbitmq.log 2>&1 \
      || { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 \
           && apt-get -o DPkg::Lock::Timeout=600 install -y -qq rabbitmq-server >/tmp/wsbroker-apt-rabbitmq.log 2>&1; }
    local rc=$?
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || { echo "rabbitmq-up: apt-get install rabbitmq-server failed (see /tmp/wsbroker-apt-rabbitmq.log)" >&2; return 1; }
  fi
  wsb_rabbitmq_start || return 1
  export WSBROKER_TEST_RABBITMQ_HOST=127.0.0.1
  echo "rabbitmq-up: RabbitMQ ready on 127.0.0.1:5672"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-up}" in
    up) wsb_rabbitmq_up ;;
    start) wsb_rabbitmq_start ;;
    stop) wsb_rabbitmq_stop ;;
    status) wsb_rabbitmq_running && echo running || { echo stopped; exit 1; } ;;
    *) echo "usage: $0 [up|start|stop|status]" >&2; exit 2 ;;
  esac
else
  wsb_rabbitmq_up
fi
