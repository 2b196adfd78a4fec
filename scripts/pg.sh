#!/usr/bin/env bash
# A project-local throwaway PostgreSQL cluster, shared by `run`, `test` and `bench`.
#
#   scripts/pg.sh url   [NAME]   start NAME's cluster if needed, print its DATABASE_URL
#   scripts/pg.sh stop  [NAME]   stop it
#   scripts/pg.sh clean [NAME]   stop it and delete its data
#   scripts/pg.sh log   [NAME]   print the path of its server log
#
# NAME is dev (default), test, bench or soak; each has its own data folder and port. Installs
# Debian's `postgresql` package when no server is found (as root). Changes no global state
# beyond that: the cluster listens on 127.0.0.1 only, with no unix socket.
set -euo pipefail

cmd=${1:-url}
name=${2:-dev}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'pg.sh: %s\n' "$*" >&2; }

case "$name" in
  dev) base_port=55432 ;;
  test) base_port=55442 ;;
  bench) base_port=55452 ;;
  soak) base_port=55462 ;;
  *) log "unknown cluster name '$name' (dev, test, bench or soak)"; exit 2 ;;
esac

find_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  return 1
}

ensure_installed() {
  bindir=$(find_bindir) && return 0
  if [ "$(id -u)" != 0 ]; then
    log "no PostgreSQL server found: install Debian's 'postgresql' package"; exit 1
  fi
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q postgresql >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
  # The package may start its own system cluster; ours does not need it.
  bindir=$(find_bindir) || { log "postgresql installed but initdb not found"; exit 1; }
}

# As root, the server must run as the 'postgres' OS user, and its folder must be reachable
# by that user: a checkout under /root is not, so fall back to a folder under /tmp.
as_owner() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

choose_state_dir() {
  local local_dir="$root/.local/pg-$name"
  if [ "$(id -u)" != 0 ]; then state="$local_dir"; return; fi
  mkdir -p "$local_dir"
  chown postgres: "$local_dir"
  if runuser -u postgres -- test -w "$local_dir"; then
    state="$local_dir"
  else
    rmdir "$local_dir" 2>/dev/null || true
    state="/tmp/idm-otp-pg-$(printf '%s' "$root" | sha256sum | cut -c1-12)-$name"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [ -f "$state/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$state/data" status >/dev/null 2>&1; }

start() {
  ensure_installed
  choose_state_dir
  mkdir -p "$state"
  [ "$(id -u)" = 0 ] && chown postgres: "$state"
  if [ ! -f "$state/data/PG_VERSION" ]; then
    log "creating cluster in $state/data"
    as_owner "$bindir/initdb" -D "$state/data" -U postgres --auth=trust --no-sync \
      -E UTF8 --locale=C >"$state/initdb.log" 2>&1 \
      || { cat "$state/initdb.log" >&2; exit 1; }
  fi
  if ! running; then
    local port=$base_port
    while port_in_use "$port"; do port=$((port + 1)); done
    local durability=""
    # Tests and local runs need no crash safety; the bench keeps PostgreSQL's defaults.
    [ "$name" != bench ] && durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    as_owner "$bindir/pg_ctl" -D "$state/data" -l "$state/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c max_connections=300 $durability" \
      >/dev/null || { tail -n 20 "$state/server.log" >&2; exit 1; }
    echo "$port" >"$state/port"
    local psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
    "${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'idm_otp'" | grep -q 1 \
      || "${psql[@]}" -c "CREATE ROLE idm_otp LOGIN CREATEDB"
    "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'idm_otp'" | grep -q 1 \
      || "${psql[@]}" -c "CREATE DATABASE idm_otp OWNER idm_otp"
    log "PostgreSQL ($name) listening on 127.0.0.1:$port"
  fi
  echo "postgres://idm_otp@127.0.0.1:$(cat "$state/port")/idm_otp"
}

case "$cmd" in
  url|start) start ;;
  stop)
    bindir=$(find_bindir) || exit 0
    choose_state_dir
    if running; then as_owner "$bindir/pg_ctl" -D "$state/data" -m fast -w stop >/dev/null; log "stopped ($name)"; fi ;;
  log)
    choose_state_dir
    echo "$state/server.log" ;;
  clean)
    "$0" stop "$name"
    choose_state_dir
    rm -rf "$state"; log "deleted $state" ;;
  *) log "usage: scripts/pg.sh url|stop|clean|log [dev|test|bench]"; exit 2 ;;
esac
