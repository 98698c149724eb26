#!/usr/bin/env bash
# Runs every test: unit and known-answer tests (cargo), then the integration tests (pytest)
# against the static release binary, a real OpenBao dev server, the fake TokenReview API, the
# independent fake Roles Anywhere endpoint, botocore, moto and podman. Installs what it needs.
# The binary is built once here and reused by every stage (IAMRA_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."

SETUP_CONTAINERS=1 bash scripts/setup.sh

echo "== cargo test (unit + KAT)"
cargo test --locked 2>&1 | tail -n 25

echo "== release build (static, musl)"
cargo build --release --locked --target x86_64-unknown-linux-musl
export IAMRA_BIN="$PWD/target/x86_64-unknown-linux-musl/release/iamra-bootstrap"
ls -l "$IAMRA_BIN"

echo "== manifests and AWS documents"
bash scripts/check-manifests.sh

echo "== integration tests"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
