#!/usr/bin/env bash
# A throw-away local PostgreSQL for tests and local use (Debian's `postgresql` package).
# Idempotent: installs the package when missing, creates a cluster in .pg/ (gitignored), listens
# on 127.0.0.1 only, creates the database and its user, and prints the DATABASE_URL on stdout.
#
#   bash scripts/postgres.sh            # install if needed, start, print the URL
#   bash scripts/postgres.sh url        # print the URL only
#   bash scripts/postgres.sh socket-url # start if needed, print the URL over the cluster's Unix socket
#                                       # (same server; a client on this machine skips TCP's loopback stack)
#   bash scripts/postgres.sh status     # print "running" or "stopped"
#   bash scripts/postgres.sh stop       # stop the cluster (data stays in .pg/)
#   bash scripts/postgres.sh restart    # stop then start it again: same port, same data
#   bash scripts/postgres.sh destroy    # stop and delete the cluster
#
# `stop` and `restart` shut down cleanly (pg_ctl -m fast: sessions are ended, every committed
# transaction is on disk first), so nothing acknowledged is lost across a restart even with the
# speed settings below (fsync and synchronous_commit off only risk data on a crash of the machine
# or a kill -9 of the server).
#
# Settings (env): MOBILIA_PG_PORT (first free from 55432), MOBILIA_PG_DIR (.pg), MOBILIA_PG_DB / _USER /
# _PASSWORD (mobilia, mobilia, mobilia-local-pw). This cluster is for tests and local use only: never expose it.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${MOBILIA_PG_PORT:-55432}
db_name=${MOBILIA_PG_DB:-mobilia}
db_user=${MOBILIA_PG_USER:-mobilia}
db_password=${MOBILIA_PG_PASSWORD:-mobilia-local-pw}
pg_dir=${MOBILIA_PG_DIR:-$PWD/.pg}
action=${1:-start}

log() { echo "postgres.sh: $*" >&2; }

url() { echo "postgresql+psycopg://${db_user}:${db_password}@127.0.0.1:${port}/${db_name}"; }
# The Unix socket's folder (in the cluster's folder; none when its path would pass the socket path limit).
socket_dir() { local dir="$pg_dir/run"; [ $((${#dir} + 20)) -le 100 ] && echo "$dir"; }
socket_url() {
  local dir
  if dir=$(socket_dir); then
    echo "postgresql+psycopg://${db_user}:${db_password}@/${db_name}?host=${dir}&port=${port}"
  else
    log "the cluster's folder is too deep for a Unix socket: TCP URL"
    url
  fi
}

find_bindir() {
  # Highest installed major version of Debian's server binaries.
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

install_postgres() {
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q >&2
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends postgresql >&2
}

# postgres refuses to run as root: as root, the cluster belongs to the `postgres` system user.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$action" in
  start | url | socket-url | status | stop | restart | destroy) ;;
  *) echo "usage: bash scripts/postgres.sh [start|url|socket-url|status|stop|restart|destroy]" >&2; exit 2 ;;
esac

bindir=$(find_bindir || true)
if [ -z "$bindir" ]; then
  if [ "$action" != start ]; then
    [ "$action" = url ] && url
    [ "$action" = status ] && echo stopped
    exit 0
  fi
  install_postgres
  bindir=$(find_bindir) || { log "no /usr/lib/postgresql/*/bin/initdb after install"; exit 1; }
fi

data="$pg_dir/data"
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  # The postgres user must reach the data folder; a project under a private home cannot be.
  mkdir -p "$pg_dir"
  if ! runuser -u postgres -- test -x "$pg_dir"; then
    # One folder per cluster: this checkout's default one, or one per MOBILIA_PG_DIR (a test's own).
    fallback_key=$PWD
    [ -z "${MOBILIA_PG_DIR:-}" ] || fallback_key=$(cd "$pg_dir" && pwd -P)
    pg_dir=${TMPDIR:-/tmp}/mobilia-pg-$(echo "$fallback_key" | sha256sum | cut -c1-12)
    data="$pg_dir/data"
    log "project folder not reachable by the postgres user: cluster in $pg_dir"
  fi
fi

# An existing cluster keeps the port it was created with; a new one takes the first free port
# from 55432 up (another checkout on this machine may already run its own cluster there).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "${MOBILIA_PG_PORT:-}" ]; then
  if [ -f "$data/postgresql.conf" ] && grep -qE '^port = [0-9]+' "$data/postgresql.conf"; then
    port=$(grep -E '^port = [0-9]+' "$data/postgresql.conf" | tail -n 1 | awk '{print $3}')
  elif [ ! -f "$data/PG_VERSION" ]; then
    while port_in_use "$port"; do port=$((port + 1)); done
  fi
fi
[ "$action" = url ] && { url; exit 0; }

running() { [ -f "$data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }
if [ "$action" = status ]; then
  if running; then echo running; else echo stopped; fi
  exit 0
fi

if [ "$action" = stop ] || [ "$action" = destroy ] || [ "$action" = restart ]; then
  if running; then
    as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2
  fi
  if [ "$action" = destroy ]; then
    rm -rf "$data" "$pg_dir/run" && rmdir "$pg_dir" 2>/dev/null || true
    log "cluster deleted"
  fi
  [ "$action" = restart ] || exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
  log "creating cluster in $data"
  mkdir -p "$pg_dir"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$pg_dir"
  pwfile=$(mktemp)
  printf '%s\n' "$db_password" >"$pwfile"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$pwfile"
  # Superuser `postgres`: local socket peer-less trust is off; TCP needs the password (SCRAM).
  as_owner "$bindir/initdb" -D "$data" -U postgres --pwfile="$pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >&2
  rm -f "$pwfile"
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "fsync = off"  # throw-away cluster: speed over durability
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
    echo "max_connections = 200"
    echo "timezone = 'UTC'"
  } | as_owner tee -a "$data/postgresql.conf" >/dev/null
fi

if ! running && [ -z "${MOBILIA_PG_PORT:-}" ] && port_in_use "$port"; then
  # Our cluster is stopped but another server (say, a second checkout's) took its port: move.
  while port_in_use "$port"; do port=$((port + 1)); done
  echo "port = $port" | as_owner tee -a "$data/postgresql.conf" >/dev/null
  log "port taken by another server: this cluster now uses $port"
fi
# Its Unix socket (for `socket-url`), also in a cluster created before it had one: the last setting wins.
if sock=$(socket_dir); then
  mkdir -p "$sock"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$sock"
else
  sock=""
fi
if ! grep -qxF "unix_socket_directories = '$sock'" "$data/postgresql.conf"; then
  running && log "restarting the cluster to open its Unix socket" && as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2
  echo "unix_socket_directories = '$sock'" | as_owner tee -a "$data/postgresql.conf" >/dev/null
fi
# Commits here are asynchronous (synchronous_commit off). PostgreSQL 15, Debian 12's, then wakes its WAL writer
# at nearly every commit, because wal_writer_flush_after (1 MB) keeps the flushed position behind what the
# writer wrote: one more process switch per chat message, on the cores that answer. At 0 the writer flushes
# all it writes (free with fsync off), and a commit wakes it only when a WAL page fills. An older cluster gets it too.
if ! grep -qxF "wal_writer_flush_after = 0" "$data/postgresql.conf"; then
  echo "wal_writer_flush_after = 0" | as_owner tee -a "$data/postgresql.conf" >/dev/null
  if running; then as_owner "$bindir/pg_ctl" -D "$data" reload >&2; fi
fi
if ! running; then
  log "starting PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
  as_owner "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >&2
fi

# Create the user and database once; the superuser password is the same throw-away one.
export PGPASSWORD=$db_password
psql_admin=("$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
if [ "$("${psql_admin[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$db_user'")" != 1 ]; then
  "${psql_admin[@]}" -c "CREATE ROLE \"$db_user\" LOGIN CREATEDB PASSWORD '$db_password'" >&2
fi
if [ "$("${psql_admin[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db_name'")" != 1 ]; then
  "${psql_admin[@]}" -c "CREATE DATABASE \"$db_name\" OWNER \"$db_user\"" >&2
fi
if [ "$action" = socket-url ]; then socket_url; else url; fi
