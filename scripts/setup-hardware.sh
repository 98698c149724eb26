#!/usr/bin/env bash
# Installs the real hardware-key parts the tests use (issue 18), idempotent; called by setup.sh.
#   - SoftHSM2 (a PKCS#11 token in a directory; module /usr/lib/softhsm/libsofthsm2.so, registered
#     with p11-kit), p11-kit (its proxy module, the default --pkcs11-lib), opensc (pkcs11-tool:
#     fills tokens), gnutls-bin (p11tool: lists token objects).
#   - swtpm + swtpm-tools (a software TPM 2.0 on a UNIX socket), tpm2-tools, tpm2-openssl and
#     libtss2-tcti-swtpm0 (make TSS2 key files in that TPM).
# No physical device is needed by any test.
set -euo pipefail
log() { printf 'setup-hardware: %s\n' "$*" >&2; }
packages=(softhsm2 p11-kit opensc gnutls-bin swtpm swtpm-tools tpm2-tools tpm2-openssl libtss2-tcti-swtpm0)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
log "apt-get install ${missing[*]}"
if [ ! -f /tmp/.iamra-apt-updated ]; then apt-get update -qq && touch /tmp/.iamra-apt-updated; fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
