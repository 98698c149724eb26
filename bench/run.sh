#!/usr/bin/env bash
# iamra-bootstrap's own benchmark (not part of CI; see bench/README.md).
#   bash bench/run.sh [--runs N] [--warmup N] [--serve-seconds S] [--serve-connections C]
#                     [--no-wrk] [--out FILE] [--keep-tmp]
# Installs what it needs (scripts/setup.sh, and Debian's wrk when missing), builds the static
# release binary when it is out of date (cargo decides; IAMRA_BIN skips the build), then runs
# bench/run.py then bench/webhook.py: Markdown report on stdout and in bench/results.md,
# progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk (Debian package) for the serve load test" >&2
  if [ ! -f /tmp/.iamra-apt-updated ]; then apt-get update -qq && touch /tmp/.iamra-apt-updated || true; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null \
    || echo "bench: could not install wrk; the serve section uses a Python client" >&2
fi

if [ -z "${IAMRA_BIN:-}" ]; then
  cargo build --release --locked --target x86_64-unknown-linux-musl >&2
  export IAMRA_BIN="$PWD/target/x86_64-unknown-linux-musl/release/iamra-bootstrap"
fi

export IAMRA_BENCH_VIA=run.sh
.venv/bin/python bench/run.py "$@"
# The admission webhook: latency at 50 TLS clients and RSS (its own section in bench/results.md).
exec .venv/bin/python bench/webhook.py
