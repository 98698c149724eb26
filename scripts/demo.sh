#!/usr/bin/env bash
# The main job, end to end on this machine, from a bare checkout (no root, no cluster, no AWS):
#   1. installs only what the demo needs (scripts/setup.sh demo: a Python venv with OpenBao,
#      cryptography, PyJWT, botocore) and, at the same time, builds the binary with the `demo`
#      profile (Cargo.toml: the fastest from scratch; the size-optimised `release` profile is for
#      the image and the published binary, scripts/build-image.sh);
#   2. starts a local OpenBao dev server configured by vault/configure.sh, with a fake
#      Kubernetes TokenReview API and a ServiceAccount token for payments/bootstrapper
#      (vault/dev.sh);
#   3. starts the fake IAM Roles Anywhere endpoint (tests/fakes/rolesanywhere.py), written from
#      the protocol document, never from this code: it verifies every request's signature and
#      certificate chain against the OpenBao PKI root as its trust anchor;
#   4. runs `iamra-bootstrap init` exactly as the initContainer would (env, kubernetes auth,
#      key in memory, CSR signed by Vault, CreateSession, credentials file);
#   5. shows the profile (secrets masked), has botocore read it, and says what happened.
# Everything is stopped at the end; KEEP=1 leaves OpenBao running (vault/dev.sh stop).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
t0=$(date +%s)
step() { printf '== [%3ds] %s\n' $(($(date +%s) - t0)) "$*"; }

for tool in cargo python3 curl; do
  command -v "$tool" >/dev/null || { echo "demo: error: $tool is needed (see README, \"Try it\")" >&2; exit 1; }
done

mkdir -p .work
step "building the binary (cargo build --profile demo) while setup installs what the demo needs (scripts/setup.sh demo)"
cargo build --locked --profile demo >.work/demo-build.log 2>&1 &
build_pid=$!
trap 'kill "$build_pid" 2>/dev/null || true' EXIT
bash scripts/setup.sh demo
step "setup done; waiting for the build"
if ! wait "$build_pid"; then
  cat .work/demo-build.log >&2
  echo "demo: error: the build failed (above)" >&2
  exit 1
fi
trap - EXIT
tail -n 1 .work/demo-build.log
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir=$repo/$target_dir ;; esac
bin=$target_dir/demo/iamra-bootstrap

step "starting OpenBao (dev) and the fake TokenReview API"
bash vault/dev.sh start
eval "$(bash vault/dev.sh env)"

demo=$repo/.work/demo
rm -rf "$demo"; mkdir -p "$demo"; chmod 700 "$demo"
ra_port=${DEMO_RA_PORT:-18910}
step "starting the fake Roles Anywhere endpoint on 127.0.0.1:$ra_port"
.venv/bin/python tests/fakes/rolesanywhere.py --listen "127.0.0.1:$ra_port" \
  --trust-anchor "$IAMRA_DEV_TRUST_ANCHOR_PEM" >"$demo/rolesanywhere.log" 2>&1 &
ra_pid=$!
cleanup() {
  kill "$ra_pid" 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || bash vault/dev.sh stop
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$ra_port/_fake/stats" && break
  sleep 0.1
done

step "iamra-bootstrap init"
export ANCHOR_ARN=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555
export PROFILE_ARN=arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000
export ROLE_ARN=arn:aws:iam::123456789012:role/payments-bootstrapper
export AWS_ENDPOINT_URL_ROLESANYWHERE=http://127.0.0.1:$ra_port
export AWS_SHARED_CREDENTIALS_FILE=$demo/aws/credentials
"$bin" init --config-file "$demo/aws/config" --termination-log "$demo/termination-log"

step "$AWS_SHARED_CREDENTIALS_FILE (mode $(stat -c %a "$AWS_SHARED_CREDENTIALS_FILE"))"
sed -E 's/^(aws_secret_access_key|aws_session_token) = (.{6}).*/\1 = \2…(masked)/' "$AWS_SHARED_CREDENTIALS_FILE"
step "botocore reads it"
AWS_CONFIG_FILE=$demo/aws/config .venv/bin/python - <<'PY'
import botocore.session
s = botocore.session.Session()
c = s.get_credentials()
print(f"botocore: method={c.method} access_key={c.access_key} region={s.get_config_variable('region')}")
PY
stats=$(curl -s "http://127.0.0.1:$ra_port/_fake/stats")
read -r accepted rejected < <(.venv/bin/python -c \
  'import json,sys; s=json.loads(sys.argv[1]); print(s["accepted"], s["rejected"])' "$stats")
[ "$accepted" -ge 1 ] && [ "$rejected" -eq 0 ] || { echo "demo: error: the fake endpoint says $stats" >&2; exit 1; }
elapsed=$(($(date +%s) - t0))
rel_creds=${AWS_SHARED_CREDENTIALS_FILE#"$repo"/}
cat <<EOF

Done in $((elapsed / 60)) min $((elapsed % 60)) s. \`iamra-bootstrap init\` logged in to a local OpenBao with a Kubernetes ServiceAccount token, had OpenBao's PKI sign a certificate for a key it made in memory, and traded that certificate for AWS credentials at a local IAM Roles Anywhere endpoint.
The credentials are in $rel_creds (profile default, mode 0600), and botocore read them; the endpoint, an independent verifier that never runs this project's code, checked the request's signature and certificate chain and accepted it ($accepted accepted, $rejected refused).
Try next: bash scripts/test.sh (every test; it installs the rest: root, apt and Node.js >= 20, see the README).
EOF
