#!/usr/bin/env bash
# PostgreSQL (Debian's packages) as a private cluster under RAGLOOP_SERVICES_HOME, on 127.0.0.1.
#
#   deploy/local/postgres.sh {start|stop|status}
#
# Env: RAGLOOP_POSTGRES_PORT (5432), RAGLOOP_SERVICES_HOME (deploy/local/.run).
# Creates role ragloop (password ragloop) and databases ragloop and ragloop_test. The system
# cluster (/var/lib/postgresql) is left alone; this one has its own data folder and socket.
# The server refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail
SERVICE=postgres
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${RAGLOOP_POSTGRES_PORT:-5432}"
HOME_DIR="$(service_dir)"
DATA_DIR="$HOME_DIR/data"
# Unix socket in a private folder: no clash with the system cluster's /var/run/postgresql.
SOCKET_DIR="$HOME_DIR/socket"
URL="postgresql://ragloop:ragloop@127.0.0.1:$PORT/ragloop"

install_if_missing() {
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && return 0
  say "PostgreSQL is not installed; installing it from Debian"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update >>"$(log_file)" 2>&1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >>"$(log_file)" 2>&1 \
    || die "apt-get install postgresql failed; see $(log_file)"
}

pg_bin() {
  local bin
  bin="$(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -n 1)"
  printf '%s/%s' "$bin" "$1"
}

# Runs a server-side command as the cluster's owner.
as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

prepare_dirs() {
  mkdir -p "$HOME_DIR" "$SOCKET_DIR"
  touch "$(log_file)"
  if ((EUID == 0)); then
    chown postgres:postgres "$HOME_DIR" "$SOCKET_DIR" "$(log_file)"
  fi
  chmod 700 "$SOCKET_DIR"
}

init_cluster_once() {
  [[ -f "$DATA_DIR/PG_VERSION" ]] && return 0
  say "creating the cluster in $DATA_DIR"
  # Socket logins are trusted (the socket folder is private to the owner); TCP needs a password.
  as_owner "$(pg_bin initdb)" -D "$DATA_DIR" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >>"$(log_file)" 2>&1 \
    || die "initdb failed; see $(log_file)"
}

server_ready() { "$(pg_bin pg_isready)" -q -h 127.0.0.1 -p "$PORT"; }

admin_psql() { "$(pg_bin psql)" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -U postgres "$@"; }

ensure_role_and_databases() {
  admin_psql -d postgres >/dev/null <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ragloop') THEN
    CREATE ROLE ragloop LOGIN PASSWORD 'ragloop';
  END IF;
END
$$;
SELECT 'CREATE DATABASE ragloop OWNER ragloop'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ragloop') \gexec
SELECT 'CREATE DATABASE ragloop_test OWNER ragloop'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ragloop_test') \gexec
SQL
}

cluster_running() { as_owner "$(pg_bin pg_ctl)" status -D "$DATA_DIR" >/dev/null 2>&1; }

postgres_start() {
  install_if_missing
  if [[ -f "$DATA_DIR/PG_VERSION" ]] && cluster_running; then
    say "already running at $URL"
    return 0
  fi
  require_port_free "$PORT" "PostgreSQL (is the system cluster running? pg_lsclusters)"
  local t0
  t0="$(date +%s.%N)"
  prepare_dirs
  init_cluster_once
  # pg_ctl daemonizes the server itself and keeps postmaster.pid in the data folder.
  as_owner "$(pg_bin pg_ctl)" start -D "$DATA_DIR" -l "$(log_file)" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$SOCKET_DIR" \
    >/dev/null || die "server did not start; see $(log_file)"
  wait_until 30 "PostgreSQL on port $PORT" "" server_ready
  ensure_role_and_databases
  say "ready at $URL (+ database ragloop_test, $(elapsed_since "$t0")s); log: $(log_file)"
}

postgres_stop() {
  if [[ ! -f "$DATA_DIR/PG_VERSION" ]] || ! cluster_running; then
    say "not running"
    return 0
  fi
  say "stopping"
  as_owner "$(pg_bin pg_ctl)" stop -D "$DATA_DIR" -m fast -w -t 60 >/dev/null
  say "stopped"
}

postgres_status() {
  if [[ ! -f "$DATA_DIR/PG_VERSION" ]] || ! cluster_running; then
    say "not running"
    return 1
  fi
  if server_ready; then
    say "running at $URL"
  else
    say "server process is up but does not accept connections on 127.0.0.1:$PORT"
    return 1
  fi
}

service_main "$@"
