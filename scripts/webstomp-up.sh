#!/usr/bin/env bash
# RabbitMQ's Web-STOMP plugin for the side-by-side load comparison (docs/performance.md): starts RabbitMQ through
# scripts/rabbitmq-up.sh, enables rabbitmq_web_stomp and makes it listen on 127.0.0.1:15674 only (ws://127.0.0.1:15674/ws,
# login guest/guest). Safe to run again. Usage: scripts/webstomp-up.sh   (or source it)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

wsb_webstomp_up() {
  # shellcheck source=scripts/rabbitmq-up.sh
  source "$here/rabbitmq-up.sh" || return 1
  local conf=/etc/rabbitmq/rabbitmq.conf restart=0
  if ! grep -q '^web_stomp.tcp.ip' "$conf" 2>/dev/null; then
    printf 'web_stomp.tcp.ip = 127.0.0.1\nweb_stomp.tcp.port = 15674\n' >> "$conf"
    restart=1
  fi
  # Web-STOMP pulls in the plain STOMP plugin, which would listen on every interface (port 61613): loopback too.
  if ! grep -q '^stomp.listeners.tcp' "$conf" 2>/dev/null; then
    printf 'stomp.listeners.tcp.1 = 127.0.0.1:61613\n' >> "$conf"
    restart=1
  fi
  rabbitmq-plugins -q enable rabbitmq_web_stomp >/dev/null || { echo "webstomp-up: could not enable rabbitmq_web_stomp" >&2; return 1; }
  if [ "$restart" = 1 ]; then
    wsb_rabbitmq_stop && wsb_rabbitmq_start || return 1
  fi
  for _ in $(seq 1 60); do
    if (exec 3<>/dev/tcp/127.0.0.1/15674) 2>/dev/null; then echo "webstomp-up: Web-STOMP on ws://127.0.0.1:15674/ws"; return 0; fi
    sleep 1
  done
  echo "webstomp-up: Web-STOMP did not listen on 127.0.0.1:15674" >&2
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then wsb_webstomp_up; else wsb_webstomp_up; fi
