# shellcheck shell=bash
# Shared plumbing for the local service launchers (kafka.sh, opensearch.sh, postgres.sh).
#
# Sourced, never run. A launcher sets SERVICE (its name, used for the log file, the pid file and
# message prefixes), defines <service>_start, <service>_stop and <service>_status, then calls
# `service_main "$@"`. Everything a service writes lives under RAGLOOP_SERVICES_HOME, so one
# folder can be deleted to start over.

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
SERVICES_HOME="${RAGLOOP_SERVICES_HOME:-$LOCAL_DIR/.run}"
mkdir -p "$SERVICES_HOME/logs"
SERVICES_HOME="$(cd "$SERVICES_HOME" && pwd)"
LOGS_DIR="$SERVICES_HOME/logs"
# The project's venv: used only for the Kafka readiness probe (kafka-python).
RAGLOOP_PYTHON="${RAGLOOP_PYTHON:-$REPO_ROOT/.venv/bin/python}"

say() { printf '[%s] %s\n' "$SERVICE" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$SERVICE" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$SERVICE" "$*" >&2
  exit 1
}

service_dir() { printf '%s/%s' "$SERVICES_HOME" "$SERVICE"; }
log_file() { printf '%s/%s.log' "$LOGS_DIR" "$SERVICE"; }
pid_file() { printf '%s/%s.pid' "$(service_dir)" "$SERVICE"; }

# Prints the recorded pid if that process is still alive and its command line contains $1
# (guards against a stale pid file whose number now belongs to another process).
running_pid() {
  local marker="$1" pid
  [[ -f "$(pid_file)" ]] || return 1
  pid="$(<"$(pid_file)")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
  printf '%s' "$pid"
}

# Runs "$@" detached in its own session (so it survives the shell, terminal or job that started
# it), appending stdout and stderr to the service log, and records its pid.
spawn_detached() {
  mkdir -p "$(service_dir)"
  printf '\n===== %s start: %s\n' "$(date -Is)" "$*" >>"$(log_file)"
  setsid "$@" </dev/null >>"$(log_file)" 2>&1 &
  printf '%s' "$!" >"$(pid_file)"
}

# Sends TERM, waits up to $2 seconds (default 60) for the process to go, then KILLs it.
stop_pid() {
  local pid="$1" timeout="${2:-60}" deadline=$((SECONDS + ${2:-60}))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "pid $pid did not stop within ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  rm -f "$(pid_file)"
}

# Stop the JVM whose main class identifies this service; a stale pid file is cleaned up.
stop_java_service() {
  local pid
  if ! pid="$(running_pid "$1")"; then
    rm -f "$(pid_file)"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  stop_pid "$pid" 60
  say "stopped"
}

port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

require_port_free() {
  local port="$1" what="$2"
  if port_open "$port"; then
    die "port $port ($what) is already taken by another process; free it or set a different port"
  fi
}

# wait_until <timeout s> <description> <pid or ""> <command...>
# Polls the command every half second. Fails early, with the end of the log, if the pid dies.
wait_until() {
  local timeout="$1" what="$2" pid="$3" deadline=$((SECONDS + $1))
  shift 3
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$(log_file)" >&2 || true
      die "process exited while waiting for $what; see $(log_file)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$(log_file)" >&2 || true
      die "timed out after ${timeout}s waiting for $what; see $(log_file)"
    fi
    sleep 0.5
  done
}

# resolve_jars <pom> <maven -D args...>
# Runs the pom's `package` phase (maven-dependency-plugin copies jars out of ~/.m2) once, and
# again only when the pom changes: a stamp holding the pom's hash makes later starts skip Maven.
resolve_jars() {
  local pom="$1" stamp hash
  shift
  stamp="$(service_dir)/jars.sha256"
  hash="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$hash" ]]; then
    return 0
  fi
  say "resolving jars with Maven (cached in ~/.m2 after the first time)"
  mkdir -p "$(service_dir)"
  if ! mvn -q -B -f "$pom" package \
    -Dwork.dir="$(service_dir)/maven" "$@" >>"$(log_file)" 2>&1; then
    tail -n 30 "$(log_file)" >&2
    die "Maven could not resolve the jars; see $(log_file)"
  fi
  printf '%s' "$hash" >"$stamp"
}

# Seconds since $1 (an epoch in seconds with a fraction, from `date +%s.%N`).
elapsed_since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

service_main() {
  local cmd="${1:-}"
  case "$cmd" in
    start | stop | status) "${SERVICE}_${cmd}" ;;
    *)
      echo "usage: $(basename "$0") {start|stop|status}" >&2
      exit 2
      ;;
  esac
}
