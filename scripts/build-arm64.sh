#!/usr/bin/env bash
# Builds the static arm64 binary target/aarch64-unknown-linux-musl/release/iamra-bootstrap:
# the same release profile as the amd64 build (fat LTO, one codegen unit), cross-compiled with
# Debian's gcc-aarch64-linux-gnu for ring's C code and the link (.cargo/config.toml); Rust's
# self-contained musl makes it static. Installs what it needs (SETUP_ARM64=1 scripts/setup.sh),
# then checks the result is a static aarch64 ELF and runs `--version` under qemu-aarch64-static.
#
# Cost: a second full release build (see docs/performance.md, "arm64"); scripts/test.sh and .ci/run run the
# arm64 tests only when this binary exists (BUILD_ARM64=1 makes scripts/test.sh build it).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-musl
BIN="target/$TARGET/release/iamra-bootstrap"

SETUP_ARM64=1 bash scripts/setup.sh
echo "== release build ($TARGET)"
cargo build --release --locked --target "$TARGET"
desc="$(file -b "$BIN")"
case "$desc" in
  *"ARM aarch64"*"statically linked"*) ;;
  *) echo "build-arm64: error: $BIN is not a static aarch64 executable ($desc)" >&2; exit 1 ;;
esac
qemu-aarch64-static "$BIN" --version
ls -l "$BIN"
