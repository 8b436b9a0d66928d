#!/usr/bin/env bash
# The sticky load balancer of deploy/nginx.conf on loopback, for tests and local use (Debian's
# `nginx` package, installed when missing). Prints the balancer's URL on stdout.
#
#   bash scripts/nginx.sh start PORT APP1 APP2   # e.g. start 7880 127.0.0.1:7881 127.0.0.1:7882
#   bash scripts/nginx.sh status                 # print "running" or "stopped"
#   bash scripts/nginx.sh stop
#
# Settings (env): MOBILIA_NGINX_DIR (.nginx): rendered config, pid, logs and temp files.
set -euo pipefail
cd "$(dirname "$0")/.."

nginx_dir=${MOBILIA_NGINX_DIR:-$PWD/.nginx}
action=${1:-status}
pid_file="$nginx_dir/nginx.pid"

log() { echo "nginx.sh: $*" >&2; }
running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case "$action" in
  status) if running; then echo running; else echo stopped; fi; exit 0 ;;
  stop)
    if running; then
      pid=$(cat "$pid_file")
      kill -QUIT "$pid"  # graceful: open event streams are closed by the replicas' own shutdown
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
      log "stopped"
    fi
    exit 0
    ;;
  start) ;;
  *) echo "usage: bash scripts/nginx.sh [start PORT APP1 APP2|status|stop]" >&2; exit 2 ;;
esac

[ $# -eq 4 ] || { echo "usage: bash scripts/nginx.sh start PORT APP1 APP2" >&2; exit 2; }
port=$2 app1=$3 app2=$4

nginx_bin=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if [ -z "$nginx_bin" ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  log "installing Debian's nginx package"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q >&2
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends nginx >&2
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi

if running; then
  "$0" stop
fi
mkdir -p "$nginx_dir/temp"
sed -e "s/\${MOBILIA_NGINX_PORT}/127.0.0.1:$port/" -e "s/\${MOBILIA_APP_1}/$app1/" -e "s/\${MOBILIA_APP_2}/$app2/" \
  deploy/nginx.conf >"$nginx_dir/mobilia.conf"
{
  # As root the workers would switch to www-data, which may not reach this folder.
  [ "$(id -u)" -ne 0 ] || echo "user root;"
  cat <<EOF
worker_processes 1;
pid $pid_file;
error_log $nginx_dir/error.log warn;
daemon on;
events { worker_connections 1024; }
http {
    access_log $nginx_dir/access.log;
    client_body_temp_path $nginx_dir/temp/body;
    proxy_temp_path $nginx_dir/temp/proxy;
    fastcgi_temp_path $nginx_dir/temp/fastcgi;
    uwsgi_temp_path $nginx_dir/temp/uwsgi;
    scgi_temp_path $nginx_dir/temp/scgi;
    include $nginx_dir/mobilia.conf;
}
EOF
} >"$nginx_dir/nginx.conf"
"$nginx_bin" -t -q -c "$nginx_dir/nginx.conf" -p "$nginx_dir" >&2
"$nginx_bin" -c "$nginx_dir/nginx.conf" -p "$nginx_dir"
for _ in $(seq 1 50); do running && break; sleep 0.1; done
running || { log "did not start, see $nginx_dir/error.log"; exit 1; }
log "balancing 127.0.0.1:$port over $app1 and $app2"
echo "http://127.0.0.1:$port"
