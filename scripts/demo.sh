#!/usr/bin/env bash
# The main job, end to end on this machine, from a bare checkout:
#   1. installs what it needs (scripts/setup.sh) and builds the static binary;
#   2. starts a local OpenBao dev server configured by vault/configure.sh, with a fake
#      Kubernetes TokenReview API and a ServiceAccount token for payments/bootstrapper
#      (vault/dev.sh);
#   3. starts the fake IAM Roles Anywhere endpoint (tests/fakes/rolesanywhere.py), which
#      verifies every request against the OpenBao PKI root as its trust anchor;
#   4. runs `iamra-bootstrap init` exactly as the initContainer would (env, kubernetes auth,
#      key in memory, CSR signed by Vault, CreateSession, credentials file);
#   5. shows the profile (secrets masked) and has botocore read it.
# Everything is stopped at the end; KEEP=1 leaves OpenBao running (vault/dev.sh stop).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

bash scripts/setup.sh
echo "== building the static binary"
cargo build --release --locked --target x86_64-unknown-linux-musl
bin=$repo/target/x86_64-unknown-linux-musl/release/iamra-bootstrap

echo "== starting OpenBao (dev) and the fake TokenReview API"
bash vault/dev.sh start
eval "$(bash vault/dev.sh env)"

demo=$repo/.work/demo
rm -rf "$demo"; mkdir -p "$demo"; chmod 700 "$demo"
ra_port=${DEMO_RA_PORT:-18910}
echo "== starting the fake Roles Anywhere endpoint on 127.0.0.1:$ra_port"
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

echo "== iamra-bootstrap init"
export ANCHOR_ARN=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555
export PROFILE_ARN=arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000
export ROLE_ARN=arn:aws:iam::123456789012:role/payments-bootstrapper
export AWS_ENDPOINT_URL_ROLESANYWHERE=http://127.0.0.1:$ra_port
export AWS_SHARED_CREDENTIALS_FILE=$demo/aws/credentials
"$bin" init --config-file "$demo/aws/config" --termination-log "$demo/termination-log"

echo "== $AWS_SHARED_CREDENTIALS_FILE ($(stat -c %a "$AWS_SHARED_CREDENTIALS_FILE"))"
sed -E 's/^(aws_secret_access_key|aws_session_token) = (.{6}).*/\1 = \2…(masked)/' "$AWS_SHARED_CREDENTIALS_FILE"
echo "== botocore reads it"
AWS_CONFIG_FILE=$demo/aws/config .venv/bin/python - <<'PY'
import botocore.session
s = botocore.session.Session()
c = s.get_credentials()
print(f"botocore: method={c.method} access_key={c.access_key} region={s.get_config_variable('region')}")
PY
echo "== done: the fake endpoint verified $(curl -s "http://127.0.0.1:$ra_port/_fake/stats")"
