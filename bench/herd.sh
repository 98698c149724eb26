#!/usr/bin/env bash
# The herd (not part of CI; see bench/README.md, "The herd"):
#   bash bench/herd.sh N [--scenarios LIST|all] [--quota-rate R] [--quota-headers] [--keep-tmp]
# N concurrent `iamra-bootstrap init` processes against one persistent OpenBao (bao server, raft
# storage), the fake TokenReview API and the verifying fake Roles Anywhere. Report on stdout and
# in bench/results.md (the "N = ..." part of the herd section); progress on stderr.
# Builds the static release binary when it is out of date (IAMRA_BIN skips the build).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
  echo "usage: bash bench/herd.sh N [--scenarios LIST|all] [--quota-rate R] [--quota-headers]" >&2
  exit 2
fi
bash scripts/setup.sh

if [ -z "${IAMRA_BIN:-}" ]; then
  cargo build --release --locked --target x86_64-unknown-linux-musl >&2
  export IAMRA_BIN="$PWD/target/x86_64-unknown-linux-musl/release/iamra-bootstrap"
fi

# herd.py stops everything it started (also on SIGINT/SIGTERM). This trap covers a driver that
# died without cleaning up: it stops the driver, then every server the driver recorded in the
# pid file (OpenBao and the fakes run in their own sessions), by pid.
export IAMRA_HERD_PIDFILE
IAMRA_HERD_PIDFILE=$(mktemp /tmp/iamra-herd-pids.XXXXXX)
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  if [ -n "${driver:-}" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  while read -r pid; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      echo "herd: stopping leftover process $pid" >&2
      kill -TERM "$pid" 2>/dev/null || true
      sleep 1
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$IAMRA_HERD_PIDFILE"
  rm -f "$IAMRA_HERD_PIDFILE"
  exit "$rc"
}
trap cleanup EXIT INT TERM

export IAMRA_HERD_CMD="bash bench/herd.sh $*"
.venv/bin/python bench/herd.py "$@" &
driver=$!
wait "$driver"
