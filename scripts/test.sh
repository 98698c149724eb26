#!/usr/bin/env bash
# Runs every test: unit and known-answer tests (cargo), the manifests, then the integration tests
# (pytest) against a real OpenBao dev server, the fake TokenReview API, the independent fake Roles
# Anywhere endpoint, botocore, the SDK matrix's clients, moto and podman. Installs what it needs
# (scripts/setup.sh test: root, apt and Node.js >= 20, see the README).
#
# The integration tests run the shipped binary (static musl, `--release`: fat LTO, size first),
# the one the container test puts in the image: one build serves every stage. It builds while
# setup installs the test tools. The SDK matrix's refresh scenario must outlive an 11-minute
# session (tests/support/sdk_refresh.py), so it starts in a pytest process of its own as soon as
# the binary exists and runs beside every later stage; the main pytest run leaves it out, and its
# result is printed and counted at the end. Every stage line carries the time and the seconds
# since the start; pytest lists every skip with its reason (-rs) and the slowest tests.
#
# With arguments, they are passed to one pytest run of everything they select (no background
# run): `bash scripts/test.sh -k serve`. IAMRA_BIN set: that binary is tested instead (e.g. a
# quick build, `cargo build --profile quick --target x86_64-unknown-linux-musl`); the release
# build is still made for the image.
# CI_LINTS=1 (.ci/run) also runs clippy and the one-TLS-provider check while the refresh runs.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$(date +%s)
stage() { printf '== %s +%ds %s\n' "$(date +%T)" $(($(date +%s) - t0)) "$*"; }

stage "setup: the static build's needs (scripts/setup.sh build)"
bash scripts/setup.sh build

target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
release_bin="$target_dir/x86_64-unknown-linux-musl/release/iamra-bootstrap"
work=$(mktemp -d "${TMPDIR:-/tmp}/iamra-test.XXXXXX")
build_pid= refresh_pid=
cleanup() {
  if [ -n "$build_pid" ]; then kill "$build_pid" 2>/dev/null || true; fi
  if [ -n "$refresh_pid" ]; then   # SIGINT: pytest stops its OpenBao, serve and clients
    kill -INT "$refresh_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$refresh_pid" 2>/dev/null || break; sleep 0.5; done
    kill -TERM "$refresh_pid" 2>/dev/null || true
    wait "$refresh_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

stage "release build (static, musl) in the background, while setup installs the test tools"
cargo build --release --locked --target x86_64-unknown-linux-musl >"$work/build.log" 2>&1 &
build_pid=$!
stage "setup: the test tools (scripts/setup.sh test)"
SETUP_CONTAINERS=1 bash scripts/setup.sh test
stage "release build: waiting for it"
build_status=0
wait "$build_pid" || build_status=$?
build_pid=
cat "$work/build.log"
[ "$build_status" -eq 0 ] || { echo "release build failed (exit $build_status)"; exit "$build_status"; }
ls -l "$release_bin"
export IAMRA_IMAGE_BIN="$release_bin"
export IAMRA_BIN="${IAMRA_BIN:-$release_bin}"
[ "$IAMRA_BIN" = "$release_bin" ] || echo "IAMRA_BIN=$IAMRA_BIN: the integration tests run that binary"

pytest_args=(-q -rs -p no:cacheprovider)
refresh_test=tests/test_sdk_matrix.py::test_refresh_no_call_signed_with_an_expired_key

# The AWS SDK for Rust client of the SDK matrix (tests/sdk/rust: aws-config + aws-sdk-sts, its
# own Cargo.lock, not part of the product). Its first build takes minutes, so it is built only
# when its target folder, kept outside the clone, is cached from an earlier run on this machine
# (SDK_MATRIX_RUST=1 makes the first build); otherwise its tests skip and say why. Built before
# the refresh scenario starts, which uses it.
sdk_target=${SDK_MATRIX_RUST_TARGET:-$HOME/.cache/iamra-bootstrap/sdk-rust-target}
if [ -d "$sdk_target" ] || [ "${SDK_MATRIX_RUST:-0}" = 1 ]; then
  stage "AWS SDK for Rust client (tests/sdk/rust, target $sdk_target)"
  CARGO_TARGET_DIR="$sdk_target" cargo build --locked --manifest-path tests/sdk/rust/Cargo.toml
  export SDK_MATRIX_RUST_CLIENT="$sdk_target/debug/sdk-probe"
else
  stage "AWS SDK for Rust client: no cached build in $sdk_target, its SDK-matrix tests skip" \
        "(SDK_MATRIX_RUST=1 bash scripts/test.sh builds it once)"
fi

if [ $# -eq 0 ]; then
  stage "SDK refresh scenario: started in the background ($refresh_test)"
  # A background job of a script ignores SIGINT; this pytest takes it back, so that the cleanup
  # below can interrupt it and its fixtures still stop their OpenBao, serve and clients.
  .venv/bin/python -c 'import signal, sys, pytest
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(pytest.main(sys.argv[1:]))' "$refresh_test" "${pytest_args[@]}" --basetemp="$work/refresh" \
    >"$work/refresh.log" 2>&1 &
  refresh_pid=$!
fi

# The hardware host build (glibc, PKCS#11 modules through dlopen) for tests/test_hardware_keys.py;
# the static binary above has no PKCS#11 (docs/hardware-keys.md). Built once the refresh scenario
# runs, so that its wait starts as early as it can.
stage "hardware host build (quick profile, --features hardware)"
cargo build --locked --profile quick --features hardware
export IAMRA_HOST_BIN="$target_dir/quick/iamra-bootstrap"

if [ "${CI_LINTS:-0}" = 1 ]; then
  stage "cargo clippy"
  cargo clippy --locked --all-targets -- -D warnings
  cargo clippy --locked --all-targets --features hardware -- -D warnings   # PKCS#11 (host build)
  stage "one TLS crypto provider (ring): no aws-lc-rs, no OpenSSL"
  for crate in aws-lc-rs aws-lc-sys openssl-sys native-tls; do
    if cargo tree --locked --target all -i "$crate" >/dev/null 2>&1; then
      echo "error: $crate is in the dependency tree"; cargo tree --locked --target all -i "$crate"; exit 1
    fi
  done
fi

stage "cargo test (unit + KAT)"
cargo test --locked 2>&1 | tail -n 25

# arm64 (optional, slow: a second LTO build): built when asked (BUILD_ARM64=1), and kept up to
# date when a previous build is cached; tests/test_arm64.py skips, saying why, without it.
ARM64_BIN="$target_dir/aarch64-unknown-linux-musl/release/iamra-bootstrap"
if [ "${BUILD_ARM64:-0}" = 1 ] || [ -x "$ARM64_BIN" ]; then
  stage "release build (static, musl, arm64)"
  bash scripts/build-arm64.sh
  export IAMRA_ARM64_BIN="$ARM64_BIN"
fi

stage "manifests and AWS documents"
bash scripts/check-manifests.sh

status=0
if [ $# -gt 0 ]; then
  stage "integration tests (pytest $*)"
  .venv/bin/python -m pytest tests "${pytest_args[@]}" --durations=10 "$@" || status=$?
else
  stage "integration tests (pytest; the refresh scenario runs beside them)"
  .venv/bin/python -m pytest tests "${pytest_args[@]}" --durations=10 \
    --deselect "$refresh_test" --basetemp="$work/main" || status=$?
  stage "SDK refresh scenario: waiting for it to end"
  refresh_status=0
  wait "$refresh_pid" || refresh_status=$?
  refresh_pid=
  cat "$work/refresh.log"
  if [ "$refresh_status" -ne 0 ]; then
    echo "SDK refresh scenario failed (exit $refresh_status)"
    [ "$status" -ne 0 ] || status=$refresh_status
  fi
fi
stage "done (exit $status)"
exit "$status"
