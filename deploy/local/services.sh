#!/usr/bin/env bash
# Starts, stops or checks several local services at once.
#
#   deploy/local/services.sh {start|stop|status} [kafka] [opensearch] [postgres]
#
# With no names: all three. Starts in the order given (default postgres, kafka, opensearch) and
# stops in reverse. `status` checks every named service and exits non-zero if any is unhealthy;
# `start` stops at the first service that fails to come up.
set -euo pipefail
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL=(postgres kafka opensearch)

usage() {
  echo "usage: $(basename "$0") {start|stop|status} [${ALL[*]}]" >&2
  exit 2
}

cmd="${1:-}"
[[ "$cmd" =~ ^(start|stop|status)$ ]] || usage
shift
names=("$@")
((${#names[@]})) || names=("${ALL[@]}")
for name in "${names[@]}"; do
  [[ " ${ALL[*]} " == *" $name "* ]] || usage
done

if [[ "$cmd" == stop ]]; then
  reversed=()
  for name in "${names[@]}"; do reversed=("$name" "${reversed[@]}"); done
  names=("${reversed[@]}")
fi

failed=()
for name in "${names[@]}"; do
  case "$cmd" in
    start) "$LOCAL_DIR/$name.sh" start ;;
    *) "$LOCAL_DIR/$name.sh" "$cmd" || failed+=("$name") ;;
  esac
done

if ((${#failed[@]})); then
  echo "[services] not OK: ${failed[*]}" >&2
  exit 1
fi
