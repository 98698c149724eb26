#!/usr/bin/env bash
# Vault HA under a herd (not part of CI; see bench/README.md, "Vault HA"):
#   bash bench/ha.sh N [--modes standbys,active,list] [--faults kill,step-down] [--fault-at S]
# A 3-node OpenBao raft cluster behind Debian's haproxy (installed with apt-get when missing),
# configured by vault/configure.sh; N concurrent `init --timeout 60s` per load-balancer mode and
# fault while the active node is killed or steps down. Report on stdout and in bench/results.md
# (between <!-- vault-ha begin --> and <!-- vault-ha end -->); progress on stderr.
# Builds the static release binary when it is out of date (IAMRA_BIN skips the build).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
  echo "usage: bash bench/ha.sh N [--modes LIST] [--faults LIST] [--fault-at S]" >&2
  exit 2
fi
[ -n "${IAMRA_SKIP_SETUP:-}" ] || bash scripts/setup.sh
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  echo "ha: installing haproxy (apt-get)" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get install -y haproxy >&2 || { $sudo_ apt-get update >&2 && $sudo_ apt-get install -y haproxy >&2; }
fi

if [ -z "${IAMRA_BIN:-}" ]; then
  cargo build --release --locked --target x86_64-unknown-linux-musl >&2
  export IAMRA_BIN="$PWD/target/x86_64-unknown-linux-musl/release/iamra-bootstrap"
fi

# ha.py stops everything it started (also on SIGINT/SIGTERM). This trap covers a driver that
# died without cleaning up: it stops the driver, then every server the driver recorded in the
# pid file (the OpenBao nodes, haproxy and the fakes run in their own sessions), by pid.
export IAMRA_HERD_PIDFILE
IAMRA_HERD_PIDFILE=$(mktemp /tmp/iamra-ha-pids.XXXXXX)
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  if [ -n "${driver:-}" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  while read -r pid; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      echo "ha: stopping leftover process $pid" >&2
      kill -TERM "$pid" 2>/dev/null || true
      sleep 1
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$IAMRA_HERD_PIDFILE"
  rm -f "$IAMRA_HERD_PIDFILE"
  exit "$rc"
}
trap cleanup EXIT INT TERM

export IAMRA_HA_CMD="bash bench/ha.sh $*"
.venv/bin/python bench/ha.py "$@" &
driver=$!
wait "$driver"
