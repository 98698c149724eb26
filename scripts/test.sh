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

# The AWS SDK for Rust client of the SDK matrix (tests/sdk/rust: aws-config + aws-sdk-sts, its
# own Cargo.lock, not part of the product). Its first build takes minutes, so it is built only
# when its target folder, kept outside the clone, is cached from an earlier run on this machine
# (SDK_MATRIX_RUST=1 makes the first build); otherwise its tests skip and say why.
sdk_target=${SDK_MATRIX_RUST_TARGET:-$HOME/.cache/iamra-bootstrap/sdk-rust-target}
if [ -d "$sdk_target" ] || [ "${SDK_MATRIX_RUST:-0}" = 1 ]; then
  echo "== AWS SDK for Rust client (tests/sdk/rust, target $sdk_target)"
  CARGO_TARGET_DIR="$sdk_target" cargo build --locked --manifest-path tests/sdk/rust/Cargo.toml
  export SDK_MATRIX_RUST_CLIENT="$sdk_target/debug/sdk-probe"
else
  echo "== AWS SDK for Rust client: no cached build in $sdk_target, its SDK-matrix tests skip" \
       "(SDK_MATRIX_RUST=1 bash scripts/test.sh builds it once)"
fi

# arm64 (optional, slow: a second LTO build): built when asked (BUILD_ARM64=1), and kept up to
# date when a previous build is cached; tests/test_arm64.py skips, saying why, without it.
ARM64_BIN="$PWD/target/aarch64-unknown-linux-musl/release/iamra-bootstrap"
if [ "${BUILD_ARM64:-0}" = 1 ] || [ -x "$ARM64_BIN" ]; then
  echo "== release build (static, musl, arm64)"
  bash scripts/build-arm64.sh
  export IAMRA_ARM64_BIN="$ARM64_BIN"
fi

echo "== manifests and AWS documents"
bash scripts/check-manifests.sh

echo "== integration tests"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
