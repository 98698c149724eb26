#!/usr/bin/env bash
# Builds the container image localhost/iamra-bootstrap:dev from a locally built static binary,
# without pulling anything: `buildah from scratch`, copy the binary to /iamra-bootstrap, set the
# same config as the Dockerfile's final stage (USER 65534:65534, ENTRYPOINT ["/iamra-bootstrap"],
# CMD ["init"], OCI labels) and commit into the storage podman uses. Prints the image size.
#
# Usage: scripts/build-image.sh [BINARY]
#        scripts/build-image.sh --multiarch
#   BINARY   default target/<target>/release/iamra-bootstrap, (re)built first with
#            `cargo build --release --locked --target <target>` (a no-op when up to date;
#            SKIP_CARGO_BUILD=1 skips it; arm64 through scripts/build-arm64.sh). An explicit
#            BINARY is used as it is.
#   --multiarch  both architectures: IMAGE (amd64), IMAGE-arm64, and the manifest list
#            MANIFEST (default IMAGE-multiarch) holding the two, for `podman push --all`.
# Env:
#   ARCH         amd64 (default, x86_64-unknown-linux-musl) or arm64 (aarch64-unknown-linux-musl)
#   IMAGE        image name (default localhost/iamra-bootstrap:dev; with ARCH=arm64 and no IMAGE,
#                localhost/iamra-bootstrap:dev-arm64)
#   IMAGE_SOURCE org.opencontainers.image.source (default: `repository` in Cargo.toml, else a placeholder)
#   FORCE=1      rebuild even when the image already holds this exact binary
#   SOURCE_DATE_EPOCH  image creation time (default: last commit time, else 0) for reproducible images
#
# Idempotent: when IMAGE already carries the same build key (label dev.iamra-bootstrap.build-key:
# SHA-256 of the binary, this script and the label values) nothing is rebuilt.
# The binary must be static (no ELF interpreter, no DT_NEEDED): `scratch` has no libc.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

ARCH="${ARCH:-amd64}"
case "$ARCH" in
  amd64) TARGET=x86_64-unknown-linux-musl; ELF_ARCH=x86-64; DEFAULT_IMAGE=localhost/iamra-bootstrap:dev ;;
  arm64) TARGET=aarch64-unknown-linux-musl; ELF_ARCH=aarch64; DEFAULT_IMAGE=localhost/iamra-bootstrap:dev-arm64 ;;
  *) die "ARCH=$ARCH: use amd64 or arm64" ;;
esac

if [ "${1:-}" = --multiarch ]; then
  base="${IMAGE:-localhost/iamra-bootstrap:dev}"
  MANIFEST="${MANIFEST:-$base-multiarch}"
  ARCH=amd64 IMAGE="$base" bash "$0"
  ARCH=arm64 IMAGE="$base-arm64" bash "$0"
  command -v buildah >/dev/null || die "buildah not found"
  # Recreated every time: a manifest list only references the two images.
  if buildah manifest exists "$MANIFEST" 2>/dev/null; then buildah manifest rm "$MANIFEST" >/dev/null; fi
  buildah manifest create "$MANIFEST" >/dev/null
  for img in "$base" "$base-arm64"; do
    buildah manifest add "$MANIFEST" "containers-storage:$img" >/dev/null
  done
  log "manifest list $MANIFEST: $(buildah manifest inspect "$MANIFEST" | awk -F'"' '/"architecture"/{printf "%s ", $4}')"
  exit 0
fi

DEFAULT_BIN="target/$TARGET/release/iamra-bootstrap"
BIN="${1:-$DEFAULT_BIN}"
IMAGE="${IMAGE:-$DEFAULT_IMAGE}"

command -v buildah >/dev/null || die "buildah not found (scripts/setup.sh with SETUP_CONTAINERS=1 installs it)"
command -v podman >/dev/null || die "podman not found (scripts/setup.sh with SETUP_CONTAINERS=1 installs it)"

if [ "$BIN" = "$DEFAULT_BIN" ] && [ "${SKIP_CARGO_BUILD:-0}" != 1 ]; then
  # Always ask cargo: a no-op when the binary is up to date, a rebuild when the sources moved.
  if [ "$ARCH" = arm64 ]; then
    bash scripts/build-arm64.sh >&2
  else
    log "cargo build --release --locked --target $TARGET"
    cargo build --release --locked --target "$TARGET"
  fi
fi
[ -e "$BIN" ] || die "$BIN: no such file"
if [ ! -f "$BIN" ] || [ ! -x "$BIN" ]; then die "$BIN: not an executable file"; fi

# --- the binary must be a static ELF of the architecture ---------------------------------------
desc="$(file -b "$BIN")"
case "$desc" in
  ELF\ 64-bit*"$ELF_ARCH"*) ;;
  *) die "$BIN: not an $ELF_ARCH ELF executable ($desc)" ;;
esac
case "$desc" in
  *"dynamically linked"* | *interpreter*) die "$BIN is dynamically linked ($desc); build with --target $TARGET" ;;
esac
if command -v readelf >/dev/null; then
  phdrs="$(readelf -lW "$BIN")"
  dyn="$(readelf -dW "$BIN" 2>/dev/null || true)"
  case "$phdrs" in *INTERP*) die "$BIN has an ELF interpreter (PT_INTERP): not static" ;; esac
  case "$dyn" in *"(NEEDED)"*) die "$BIN needs shared libraries (DT_NEEDED): not static" ;; esac
fi
log "static binary: $BIN ($desc)"

# --- metadata ---------------------------------------------------------------------------------
cargo_field() { # first `key = "value"` of [package] in Cargo.toml
  awk -v k="$1" '/^\[/{p=($0=="[package]")} p && $1==k {sub(/^[^=]*= *"/,""); sub(/".*$/,""); print; exit}' Cargo.toml
}
VERSION="$(cargo_field version)"
DESCRIPTION="$(cargo_field description)"
LICENSES="$(cargo_field license)"
SOURCE="${IMAGE_SOURCE:-$(cargo_field repository)}"
SOURCE="${SOURCE:-https://github.com/iamra-bootstrap/iamra-bootstrap}"
REVISION="$(git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)"
EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
SHA="$(sha256sum "$BIN" | cut -d' ' -f1)"
# What the image is made of: the binary, this script and the label values.
KEY="$(printf '%s\n' "$SHA" "$VERSION" "$REVISION" "$SOURCE" "$EPOCH" "$IMAGE" "$ARCH" | cat - "$0" | sha256sum | cut -d' ' -f1)"

print_size() {
  local bytes
  bytes="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  awk -v b="$bytes" -v i="$IMAGE" 'BEGIN{printf "image %s: %.2f MB (%d bytes)\n", i, b/1000000, b}'
}

if [ "${FORCE:-0}" != 1 ] \
   && have="$(podman image inspect --format '{{index .Labels "dev.iamra-bootstrap.build-key"}}' "$IMAGE" 2>/dev/null)" \
   && [ "$have" = "$KEY" ]; then
  log "$IMAGE is up to date (binary sha256 $SHA)"
  print_size
  exit 0
fi

# --- build ------------------------------------------------------------------------------------
old_id="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
ctr="$(buildah from --quiet scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet --chown 0:0 --chmod 0555 "$ctr" "$BIN" /iamra-bootstrap >/dev/null
buildah config \
  --os linux --arch "$ARCH" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env HOME=/home/nobody \
  --user 65534:65534 \
  --entrypoint '["/iamra-bootstrap"]' \
  --cmd '["init"]' \
  --label "org.opencontainers.image.title=iamra-bootstrap" \
  --label "org.opencontainers.image.description=$DESCRIPTION" \
  --label "org.opencontainers.image.source=$SOURCE" \
  --label "org.opencontainers.image.licenses=$LICENSES" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$REVISION" \
  --label "dev.iamra-bootstrap.binary.sha256=$SHA" \
  --label "dev.iamra-bootstrap.build-key=$KEY" \
  --created-by "scripts/build-image.sh" \
  "$ctr"
buildah commit --quiet --rm --identity-label=false --timestamp "$EPOCH" "$ctr" "$IMAGE" >/dev/null
trap - EXIT

# drop the image this one replaced, if nothing else uses it
new_id="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  podman image rm "$old_id" >/dev/null 2>&1 || true
fi
log "committed $IMAGE ($new_id)"
print_size
