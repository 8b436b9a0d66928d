#!/usr/bin/env bash
# A throw-away local Redis for tests and local use (Debian's `redis-server` package).
# Idempotent: installs the package when missing, starts one server on 127.0.0.1 only (no
# persistence, a random password kept in .redis/), and prints its MOBILIA_REDIS_URL on stdout.
#
#   bash scripts/redis.sh            # install if needed, start, print the URL
#   bash scripts/redis.sh url        # print the URL only
#   bash scripts/redis.sh status     # print "running" or "stopped"
#   bash scripts/redis.sh stop       # stop the server (nothing is kept: no persistence)
#
# Settings (env): MOBILIA_REDIS_PORT (first free from 56379), MOBILIA_REDIS_DIR (.redis). This server
# is for tests and local use only: never expose it.
set -euo pipefail
cd "$(dirname "$0")/.."

redis_dir=${MOBILIA_REDIS_DIR:-$PWD/.redis}
action=${1:-start}

log() { echo "redis.sh: $*" >&2; }

case "$action" in
  start | url | status | stop) ;;
  *) echo "usage: bash scripts/redis.sh [start|url|status|stop]" >&2; exit 2 ;;
esac

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The port and password of this checkout's server are kept beside its pid file, so `url`, `status`
# and `stop` find the server that `start` chose.
mkdir -p "$redis_dir"
if [ -n "${MOBILIA_REDIS_PORT:-}" ]; then
  port=$MOBILIA_REDIS_PORT
elif [ -f "$redis_dir/port" ]; then
  port=$(cat "$redis_dir/port")
else
  port=56379
  while port_in_use "$port"; do port=$((port + 1)); done
fi
if [ ! -s "$redis_dir/password" ]; then
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$redis_dir/password")
fi
password=$(cat "$redis_dir/password")
url() { echo "redis://:${password}@127.0.0.1:${port}/0"; }

pid_file="$redis_dir/redis.pid"
running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

case "$action" in
  url) url; exit 0 ;;
  status) if running; then echo running; else echo stopped; fi; exit 0 ;;
  stop)
    if running; then
      pid=$(cat "$pid_file")
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "stopped"
    fi
    rm -f "$pid_file"
    exit 0
    ;;
esac

if ! command -v redis-server >/dev/null 2>&1; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  log "installing Debian's redis-server package"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q >&2
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends redis-server >&2
fi

if ! running; then
  if [ -z "${MOBILIA_REDIS_PORT:-}" ] && port_in_use "$port"; then
    while port_in_use "$port"; do port=$((port + 1)); done  # another server took it meanwhile
  fi
  echo "$port" >"$redis_dir/port"
  # The password goes through a config file (mode 0600), never on a command line.
  conf="$redis_dir/redis.conf"
  (umask 077 && cat >"$conf" <<EOF
bind 127.0.0.1
port $port
protected-mode yes
requirepass $password
daemonize yes
pidfile $pid_file
logfile $redis_dir/redis.log
dir $redis_dir
save ""
appendonly no
EOF
  )
  log "starting $(redis-server --version | awk '{print $1, $2, $3}') on 127.0.0.1:$port"
  redis-server "$conf"
  for _ in $(seq 1 100); do
    if REDISCLI_AUTH=$password redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.1
  done
  REDISCLI_AUTH=$password redis-cli -p "$port" ping 2>/dev/null | grep -q PONG || { log "not answering, see $redis_dir/redis.log"; exit 1; }
fi
url
