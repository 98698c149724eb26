#!/usr/bin/env bash
# Configures Vault or OpenBao for iamra-bootstrap, idempotently (run it again after any change).
#
# Uses the `bao` or `vault` CLI ($VAULT_BIN, else whichever is on PATH, else the repo's
# .venv/bin/bao) with the usual client environment: VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE,
# VAULT_CACERT... The token needs to manage mounts, auth methods, policies and PKI (root, or
# a policy equivalent in the namespace). Every write goes through stdin as JSON, so no secret
# appears on a command line.
#
# What it sets up (see vault/README.md):
#   - PKI root mount $PKI_ROOT_MOUNT (EC P-384 root, generated once, or imported once from
#     $PKI_ROOT_BUNDLE_FILE) and intermediate mount $PKI_INT_MOUNT (EC P-256, signed by the root;
#     the root is imported alongside so `ca_chain` is [intermediate, root]).
#     PKI_ROTATE_INTERMEDIATE=1 makes a new intermediate key + certificate the default issuer.
#   - the per-ServiceAccount role $PKI_TEMPLATED_ROLE (the default, and the multi-tenant path):
#     its only allowed CN is <service account>.<namespace>.$PKI_TEMPLATED_DOMAIN_SUFFIX of the
#     logged-in identity, granted by policy $POLICY_NAME (vault/policies/bootstrapper.hcl).
#   - only when PKI_ROLE is set (empty, the default, means none): a fixed-CN role $PKI_ROLE
#     (CNs $PKI_ROLE_ALLOWED_DOMAINS, never under $PKI_TEMPLATED_DOMAIN_SUFFIX) with its own
#     policy pki-fixed-$PKI_ROLE (vault/policies/fixed-cn.hcl), granted only to the login roles
#     of PKI_ROLE_AUTH_METHODS, which must all stand for one identity: one ServiceAccount (one
#     name, one namespace, no wildcard) or the approle role. Anything that would let two
#     accounts ask for the same CN is refused before anything is written.
#     Both roles: client_flag, no server_flag, keyUsage digitalSignature, basicConstraints
#     CA:FALSE, cn_validations hostname (no email-form CN), any key type, ttl $PKI_CERT_TTL:
#     what IAM Roles Anywhere accepts. Certificates are neither stored nor leased
#     (no_store=true, generate_lease=false: PKI_NO_STORE, PKI_GENERATE_LEASE), so a pod start
#     writes nothing to storage in PKI.
#   - the auth methods listed in $AUTH_METHODS (kubernetes, jwt, approle), each with a role
#     granting only those policies, with $TOKEN_TYPE tokens (service, or batch: nothing written
#     to storage at login, nothing to revoke). The kubernetes role requires the token audience
#     $K8S_AUDIENCE (default vault).
#
# Outputs go to $OUT_DIR: trust-anchor.pem (the root), intermediate.pem (register it as the IAM
# Roles Anywhere trust anchor: aws/README.md), ca-chain.pem, approle-secret-id (0600) and
# outputs.env (KEY=value lines, also printed on stdout). Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- parameters ---------------------------------------------------------------------------
: "${OUT_DIR:=$PWD/vault-out}"
: "${POLICY_NAME:=bootstrapper}"
: "${POLICY_FILE:=$here/policies/bootstrapper.hcl}"

: "${PKI_ROOT_MOUNT:=pki}"
: "${PKI_ROOT_CN:=iamra-bootstrap Root CA}"
: "${PKI_ROOT_TTL:=87600h}"
: "${PKI_ROOT_KEY_BITS:=384}"
: "${PKI_ROOT_BUNDLE_FILE:=}"          # PEM certificate + private key to import instead of generating
: "${PKI_INT_MOUNT:=pki_int}"
: "${PKI_INT_CN:=iamra-bootstrap Intermediate CA}"
: "${PKI_INT_TTL:=43800h}"
: "${PKI_INT_KEY_BITS:=256}"
: "${PKI_ROTATE_INTERMEDIATE:=0}"
: "${PKI_TEMPLATED_ROLE=workload}"      # per-ServiceAccount role; empty: none
: "${PKI_ROLE=}"                       # fixed-CN role, opt-in; empty (the default): none
: "${PKI_ROLE_ALLOWED_DOMAINS=}"       # its CNs, comma-separated (required with PKI_ROLE)
: "${PKI_ROLE_POLICY_FILE:=$here/policies/fixed-cn.hcl}"
: "${PKI_TEMPLATED_DOMAIN_SUFFIX:=workload.internal}"
: "${PKI_URLS_BASE:=}"                 # e.g. https://vault.example.com: AIA/CRL URLs in the CAs
: "${PKI_CERT_TTL:=1h}"
: "${PKI_CERT_MAX_TTL:=24h}"
: "${PKI_NO_STORE:=true}"              # false: Vault keeps every certificate (revocable by serial)
: "${PKI_GENERATE_LEASE:=false}"       # true: a lease per certificate (revoked when it expires)

: "${AUTH_METHODS:=kubernetes}"        # any of: kubernetes jwt approle
: "${PKI_ROLE_AUTH_METHODS=$AUTH_METHODS}" # login roles granted the fixed-CN role (one identity)
: "${TOKEN_TTL:=10m}"
: "${TOKEN_MAX_TTL:=15m}"
: "${TOKEN_TYPE:=service}"             # service, or batch: not stored, not revocable (vault/README.md)

: "${K8S_AUTH_MOUNT:=kubernetes}"
: "${K8S_HOST:=}"                      # required with kubernetes, e.g. https://10.0.0.1:6443
: "${K8S_CA_CERT_FILE:=}"              # CA of the Kubernetes API (needed when Vault runs outside it)
: "${K8S_TOKEN_REVIEWER_JWT_FILE:=}"   # token allowed to call TokenReview (else: the client's JWT)
: "${K8S_PEM_KEYS_FILE:=}"             # optional SA signing public key(s): local signature check
: "${K8S_ISSUER:=}"
: "${K8S_DISABLE_LOCAL_CA_JWT:=}"      # default: true when K8S_CA_CERT_FILE is given
: "${K8S_ROLE:=bootstrapper}"
: "${K8S_BOUND_SA_NAMES:=bootstrapper}"      # comma-separated, "*" allowed
: "${K8S_BOUND_SA_NAMESPACES:=payments}"     # comma-separated, "*" allowed (not both)
: "${K8S_AUDIENCE:=vault}"             # the audience of the pods' projected token volume (never empty)

: "${JWT_AUTH_MOUNT:=jwt}"
: "${JWT_VALIDATION_PUBKEY_FILE:=}"    # one of these three is required with jwt
: "${JWT_JWKS_URL:=}"
: "${JWT_OIDC_DISCOVERY_URL:=}"
: "${JWT_BOUND_ISSUER:=}"
: "${JWT_ROLE:=bootstrapper}"
: "${JWT_AUDIENCE:=$K8S_AUDIENCE}"
: "${JWT_BOUND_SA_NAMES:=$K8S_BOUND_SA_NAMES}"
: "${JWT_BOUND_SA_NAMESPACES:=$K8S_BOUND_SA_NAMESPACES}"

: "${APPROLE_AUTH_MOUNT:=approle}"
: "${APPROLE_ROLE:=bootstrapper}"
: "${APPROLE_ROLE_ID:=}"               # pin the role id (else Vault's)
: "${APPROLE_SECRET_ID_TTL:=0}"
: "${APPROLE_SECRET_ID_FILE:=$OUT_DIR/approle-secret-id}"

# ---- helpers ------------------------------------------------------------------------------
log() { printf 'configure: %s\n' "$*" >&2; }
die() { printf 'configure: error: %s\n' "$*" >&2; exit 1; }

if [ -n "${VAULT_BIN:-}" ]; then
  vault_bin=$VAULT_BIN
elif command -v bao >/dev/null 2>&1; then
  vault_bin=bao
elif command -v vault >/dev/null 2>&1; then
  vault_bin=vault
elif [ -x "$here/../.venv/bin/bao" ]; then
  vault_bin=$here/../.venv/bin/bao
else
  die "neither bao nor vault found (set VAULT_BIN, or run scripts/setup.sh)"
fi
v() { "$vault_bin" "$@"; }

# JSON string / array literals (arrays from comma- or space-separated words; no globbing).
js() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}; s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}
jlist() {
  local -a items=(); local out="" item
  IFS=', ' read -r -a items <<<"$1"
  for item in "${items[@]}"; do
    [ -n "$item" ] && out+="${out:+,}$(js "$item")"
  done
  printf '[%s]' "$out"
}
file_or_die() { [ -r "$1" ] || die "$2: cannot read '$1'"; cat "$1"; }

# write PATH JSON [cli flags...]: POST the JSON body; prints what the flags ask for (-field=...).
write() {
  local path=$1 body=$2; shift 2
  if [ $# -eq 0 ]; then
    printf '%s' "$body" | v write "$path" - >/dev/null
  else
    printf '%s' "$body" | v write "$@" "$path" -
  fi
}

# present READ-PATH: 0 if it reads, 1 if Vault says it is absent, exits on any other error.
present() {
  local err
  if err=$(v read -format=json "$1" 2>&1 >/dev/null); then return 0; fi
  case "$err" in
    *"No secret engine mount"*|*"No auth engine"*|*"no default issuer"*|*"No value found"*|*"unknown role"*|*"role not found"*)
      return 1 ;;
  esac
  printf '%s\n' "$err" >&2
  die "cannot read $1"
}

enable_secrets() { # MOUNT MAX_TTL
  if present "sys/mounts/$1"; then
    local type; type=$(v read -field=type "sys/mounts/$1")
    [ "$type" = pki ] || die "mount $1/ exists with type $type, not pki"
    v secrets tune -max-lease-ttl="$2" "$1" >/dev/null
  else
    log "enabling pki at $1/"
    v secrets enable -path="$1" -max-lease-ttl="$2" pki >/dev/null
  fi
}

enable_auth() { # TYPE MOUNT; prints the accessor
  if present "sys/auth/$2"; then
    local type; type=$(v read -field=type "sys/auth/$2")
    [ "$type" = "$1" ] || die "auth mount $2/ exists with type $type, not $1"
  else
    log "enabling $1 auth at $2/"
    v auth enable -path="$2" "$1" >/dev/null
  fi
  v read -field=accessor "sys/auth/$2"
}

has_method() { case " ${AUTH_METHODS//,/ } " in *" $1 "*) return 0 ;; esac; return 1; }

# ---- preflight ----------------------------------------------------------------------------
for m in ${AUTH_METHODS//,/ }; do
  case "$m" in kubernetes|jwt|approle) ;; *) die "AUTH_METHODS: unknown method '$m'" ;; esac
done
case "$TOKEN_TYPE" in service|batch) ;; *) die "TOKEN_TYPE: '$TOKEN_TYPE' is neither service nor batch" ;; esac
for flag in PKI_NO_STORE PKI_GENERATE_LEASE; do
  case "${!flag}" in true|false) ;; *) die "$flag: '${!flag}' is neither true nor false" ;; esac
done
if has_method kubernetes && [ -z "$K8S_HOST" ]; then die "K8S_HOST is required with kubernetes auth"; fi
if has_method jwt && [ -z "$JWT_VALIDATION_PUBKEY_FILE$JWT_JWKS_URL$JWT_OIDC_DISCOVERY_URL" ]; then
  die "jwt auth needs JWT_VALIDATION_PUBKEY_FILE, JWT_JWKS_URL or JWT_OIDC_DISCOVERY_URL"
fi
# The per-ServiceAccount role: CN <sa>.<ns>.<suffix>. Namespaces are DNS labels, so no two
# accounts share one; a fixed CN inside that space could be another account's.
words() { local -a w=(); IFS=', ' read -r -a w <<<"$1"; printf '%s\n' "${w[@]}" | sed '/^$/d'; }
lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }
suffix=$(lower "${PKI_TEMPLATED_DOMAIN_SUFFIX#.}")
[ -n "$suffix" ] || die "PKI_TEMPLATED_DOMAIN_SUFFIX is empty"
[ -z "$PKI_ROLE$PKI_ROLE_ALLOWED_DOMAINS" ] || [ -n "$PKI_ROLE" ] \
  || die "PKI_ROLE_ALLOWED_DOMAINS is set but PKI_ROLE is empty: the fixed-CN role is off unless PKI_ROLE names it"
if [ -n "$PKI_ROLE" ]; then
  [ "$PKI_ROLE" != "$PKI_TEMPLATED_ROLE" ] || die "PKI_ROLE and PKI_TEMPLATED_ROLE are both '$PKI_ROLE': give the fixed-CN role another name"
  [ -n "$(words "$PKI_ROLE_ALLOWED_DOMAINS")" ] || die "PKI_ROLE=$PKI_ROLE needs PKI_ROLE_ALLOWED_DOMAINS (its CNs); there is no default"
  for d in $(words "$PKI_ROLE_ALLOWED_DOMAINS"); do
    dl=$(lower "${d%.}")
    case "$dl" in
      *[!a-z0-9.-]*) die "PKI_ROLE_ALLOWED_DOMAINS: '$d' is not a host name (letters, digits, '-' and '.' only)" ;;
      "$suffix"|*".$suffix") die "PKI_ROLE_ALLOWED_DOMAINS: '$d' is in the per-ServiceAccount name space <sa>.<namespace>.$suffix, where it can be another account's CN; choose a name outside it" ;;
    esac
  done
  for m in ${PKI_ROLE_AUTH_METHODS//,/ }; do
    has_method "$m" || die "PKI_ROLE_AUTH_METHODS: '$m' is not in AUTH_METHODS ($AUTH_METHODS)"
  done
  # Every login role granted the fixed role must stand for one and the same identity.
  holders=()
  for m in ${PKI_ROLE_AUTH_METHODS//,/ }; do
    case "$m" in
      kubernetes) names=$K8S_BOUND_SA_NAMES nss=$K8S_BOUND_SA_NAMESPACES pre=K8S ;;
      jwt) names=$JWT_BOUND_SA_NAMES nss=$JWT_BOUND_SA_NAMESPACES pre=JWT ;;
      approle) holders+=("the approle role $APPROLE_ROLE"); continue ;;
    esac
    if [ "$(words "$names" | wc -l)" != 1 ] || [ "$(words "$nss" | wc -l)" != 1 ] \
       || case "$names$nss" in *[\*\?\[\]\{\}]*) true ;; *) false ;; esac; then
      die "PKI_ROLE=$PKI_ROLE would give one fixed CN to every ServiceAccount that ${pre}_BOUND_SA_NAMES='$names' and ${pre}_BOUND_SA_NAMESPACES='$nss' admit; bind exactly one ServiceAccount (no wildcard, no list) or leave PKI_ROLE empty and use the per-ServiceAccount role"
    fi
    holders+=("ServiceAccount $(words "$nss")/$(words "$names")")
  done
  uniq_holders=$(printf '%s\n' "${holders[@]}" | sort -u)
  [ "$(printf '%s\n' "$uniq_holders" | sed '/^$/d' | wc -l)" -le 1 ] \
    || die "PKI_ROLE=$PKI_ROLE would give one fixed CN to $(printf '%s\n' "$uniq_holders" | paste -sd, - | sed 's/,/ and /g'); grant it to one identity (PKI_ROLE_AUTH_METHODS)"
fi
fixed_policy=${PKI_ROLE:+pki-fixed-$PKI_ROLE}

v token lookup >/dev/null || die "cannot use the token at ${VAULT_ADDR:-<VAULT_ADDR unset>} (set VAULT_ADDR and VAULT_TOKEN)"
mkdir -p "$OUT_DIR"

# A fixed-CN role granted by an earlier run to another login role (configure.sh run once per
# account with the same PKI_ROLE) would share its CN: refuse before writing anything.
if [ -n "$fixed_policy" ]; then
  for m in kubernetes jwt approle; do
    case "$m" in
      kubernetes) mount=$K8S_AUTH_MOUNT ours=$K8S_ROLE ;;
      jwt) mount=$JWT_AUTH_MOUNT ours=$JWT_ROLE ;;
      approle) mount=$APPROLE_AUTH_MOUNT ours=$APPROLE_ROLE ;;
    esac
    present "sys/auth/$mount" || continue
    roles=$(v list "auth/$mount/role" 2>/dev/null | tail -n +3) || roles=""
    for r in $roles; do
      if [ "$r" = "$ours" ] && case " ${PKI_ROLE_AUTH_METHODS//,/ } " in *" $m "*) true ;; *) false ;; esac; then continue; fi
      pols=$(v read -field=token_policies "auth/$mount/role/$r" 2>/dev/null) || pols=""
      case " $(printf '%s' "$pols" | tr -d '[]' | tr ',' ' ') " in
        *" $fixed_policy "*) die "PKI_ROLE=$PKI_ROLE is already granted to auth/$mount/role/$r (policy $fixed_policy); one fixed-CN role per account: give this account its own PKI_ROLE" ;;
      esac
    done
  done
fi

set_urls() { # MOUNT: where clients find the issuer and the CRL (embedded in what it signs)
  [ -n "$PKI_URLS_BASE" ] || return 0
  local base="${PKI_URLS_BASE%/}/v1/${VAULT_NAMESPACE:+${VAULT_NAMESPACE%/}/}$1"
  write "$1/config/urls" "{\"issuing_certificates\":[$(js "$base/ca")],\"crl_distribution_points\":[$(js "$base/crl")]}"
}

# ---- PKI: root ----------------------------------------------------------------------------
enable_secrets "$PKI_ROOT_MOUNT" "$PKI_ROOT_TTL"
set_urls "$PKI_ROOT_MOUNT"
if ! present "$PKI_ROOT_MOUNT/cert/ca"; then
  if [ -n "$PKI_ROOT_BUNDLE_FILE" ]; then
    log "importing the root CA from $PKI_ROOT_BUNDLE_FILE"
    write "$PKI_ROOT_MOUNT/config/ca" "{\"pem_bundle\":$(js "$(file_or_die "$PKI_ROOT_BUNDLE_FILE" PKI_ROOT_BUNDLE_FILE)")}"
  else
    log "generating the root CA in $PKI_ROOT_MOUNT/"
    write "$PKI_ROOT_MOUNT/root/generate/internal" \
      "{\"common_name\":$(js "$PKI_ROOT_CN"),\"key_type\":\"ec\",\"key_bits\":$PKI_ROOT_KEY_BITS,\"ttl\":$(js "$PKI_ROOT_TTL"),\"issuer_name\":\"root\"}"
  fi
fi
v read -field=certificate "$PKI_ROOT_MOUNT/cert/ca" >"$OUT_DIR/trust-anchor.pem"
printf '\n' >>"$OUT_DIR/trust-anchor.pem"

# ---- PKI: intermediate --------------------------------------------------------------------
enable_secrets "$PKI_INT_MOUNT" "$PKI_INT_TTL"
set_urls "$PKI_INT_MOUNT"
if ! present "$PKI_INT_MOUNT/cert/ca" || [ "$PKI_ROTATE_INTERMEDIATE" = 1 ]; then
  log "creating an intermediate CA in $PKI_INT_MOUNT/"
  key_id=$(write "$PKI_INT_MOUNT/keys/generate/internal" \
    "{\"key_type\":\"ec\",\"key_bits\":$PKI_INT_KEY_BITS,\"key_name\":\"int-$(date -u +%Y%m%dT%H%M%SZ)\"}" -field=key_id)
  csr=$(write "$PKI_INT_MOUNT/intermediate/generate/existing" \
    "{\"key_ref\":$(js "$key_id"),\"common_name\":$(js "$PKI_INT_CN")}" -field=csr)
  # format=pem_bundle: the intermediate followed by the root, so set-signed imports the root too
  # and the mount's ca_chain becomes [intermediate, root].
  bundle=$(write "$PKI_ROOT_MOUNT/root/sign-intermediate" \
    "{\"csr\":$(js "$csr"),\"common_name\":$(js "$PKI_INT_CN"),\"format\":\"pem_bundle\",\"ttl\":$(js "$PKI_INT_TTL"),\"max_path_length\":0}" -field=certificate)
  write "$PKI_INT_MOUNT/intermediate/set-signed" "{\"certificate\":$(js "$bundle")}"
  new_issuer=""
  for id in $(v list "$PKI_INT_MOUNT/issuers" | tail -n +3); do
    if [ "$(v read -field=key_id "$PKI_INT_MOUNT/issuer/$id")" = "$key_id" ]; then new_issuer=$id; fi
  done
  [ -n "$new_issuer" ] || die "cannot find the new intermediate among $PKI_INT_MOUNT/issuers"
  write "$PKI_INT_MOUNT/config/issuers" "{\"default\":$(js "$new_issuer")}"
  log "default issuer of $PKI_INT_MOUNT/ is now $new_issuer"
fi
int_issuer=$(v read -field=issuer_id "$PKI_INT_MOUNT/issuer/default")
v read -field=certificate "$PKI_INT_MOUNT/issuer/default" >"$OUT_DIR/intermediate.pem"
printf '\n' >>"$OUT_DIR/intermediate.pem"
chain=$(v read -format=json "$PKI_INT_MOUNT/issuer/default" | sed -n '/"ca_chain"/,/]/p' | grep -c 'BEGIN CERTIFICATE' || true)
[ "$chain" -ge 2 ] || die "$PKI_INT_MOUNT/ ca_chain has $chain certificate(s); expected intermediate and root"
v read -field=ca_chain "$PKI_INT_MOUNT/cert/ca_chain" >"$OUT_DIR/ca-chain.pem"
printf '\n' >>"$OUT_DIR/ca-chain.pem"

# ---- auth mounts (their accessors go into the templated role) ----------------------------
k8s_accessor="" jwt_accessor="" approle_accessor=""
if has_method kubernetes; then k8s_accessor=$(enable_auth kubernetes "$K8S_AUTH_MOUNT"); fi
if has_method jwt; then jwt_accessor=$(enable_auth jwt "$JWT_AUTH_MOUNT"); fi
if has_method approle; then approle_accessor=$(enable_auth approle "$APPROLE_AUTH_MOUNT"); fi

# ---- PKI roles ----------------------------------------------------------------------------
# POST replaces a role whole: every field that matters is spelled out.
client_role_body() { # ALLOWED_DOMAINS_JSON TEMPLATED(true|false)
  printf '{"allowed_domains":%s,"allowed_domains_template":%s,"allow_bare_domains":true,' "$1" "$2"
  printf '"allow_subdomains":false,"allow_glob_domains":false,"allow_wildcard_certificates":false,'
  printf '"allow_localhost":false,"allow_ip_sans":false,"allowed_uri_sans":[],"allowed_other_sans":[],'
  printf '"allow_any_name":false,"enforce_hostnames":true,"require_cn":true,'
  # Host names only: an email-form CN (<other account's CN>@<own CN>) is refused, not matched
  # on its domain part.
  printf '"cn_validations":["hostname"],'
  printf '"server_flag":false,"client_flag":true,"code_signing_flag":false,"email_protection_flag":false,'
  printf '"key_usage":["DigitalSignature"],"ext_key_usage":[],"basic_constraints_valid_for_non_ca":true,'
  printf '"key_type":"any","ttl":%s,"max_ttl":%s,"issuer_ref":"default",' "$(js "$PKI_CERT_TTL")" "$(js "$PKI_CERT_MAX_TTL")"
  # Short-lived and never revoked one by one (a pod's credentials are cut off by Roles Anywhere,
  # not by a CRL): no storage write and no lease per certificate (vault/README.md, "Cost").
  printf '"no_store":%s,"generate_lease":%s}' "$PKI_NO_STORE" "$PKI_GENERATE_LEASE"
}
if [ -n "$PKI_ROLE" ]; then
  log "writing fixed-CN PKI role $PKI_INT_MOUNT/roles/$PKI_ROLE"
  write "$PKI_INT_MOUNT/roles/$PKI_ROLE" "$(client_role_body "$(jlist "$PKI_ROLE_ALLOWED_DOMAINS")" false)"
fi

if [ -n "$PKI_TEMPLATED_ROLE" ]; then
  # One allowed domain per identity source: Vault skips a template whose alias the entity
  # lacks, so a kubernetes login and a jwt login each get their own service account's CN.
  domains=""
  for acc in $k8s_accessor $jwt_accessor; do
    a="identity.entity.aliases.$acc.metadata"
    domains+="${domains:+,}{{$a.service_account_name}}.{{$a.service_account_namespace}}.$PKI_TEMPLATED_DOMAIN_SUFFIX"
  done
  [ -n "$domains" ] || die "PKI_TEMPLATED_ROLE needs kubernetes or jwt in AUTH_METHODS (or set PKI_TEMPLATED_ROLE=)"
  log "writing templated PKI role $PKI_INT_MOUNT/roles/$PKI_TEMPLATED_ROLE"
  write "$PKI_INT_MOUNT/roles/$PKI_TEMPLATED_ROLE" "$(client_role_body "$(jlist "$domains")" true)"
fi

# ---- policy -------------------------------------------------------------------------------
esc() { printf '%s' "$1" | sed -e 's/[\\&#]/\\&/g'; }   # for a sed replacement
policy=$(file_or_die "$POLICY_FILE" POLICY_FILE)
if [ -z "$PKI_TEMPLATED_ROLE" ]; then policy=$(printf '%s\n' "$policy" | grep -v '# templated$'); fi
# Vault gets the rules only: no comment lines, no markers.
policy=$(printf '%s\n' "$policy" | grep -v '^[[:space:]]*#' | sed -e 's/[[:space:]]*# templated$//' | cat -s)
policy=$(printf '%s\n' "$policy" | sed -E \
  -e "s#\"pki_int/(sign|issue)/workload\"#\"$(esc "$PKI_INT_MOUNT")/\\1/$(esc "$PKI_TEMPLATED_ROLE")\"#")
log "writing policy $POLICY_NAME"
write "sys/policies/acl/$POLICY_NAME" "{\"policy\":$(js "$policy")}"
if [ -n "$fixed_policy" ]; then
  policy=$(file_or_die "$PKI_ROLE_POLICY_FILE" PKI_ROLE_POLICY_FILE | grep -v '^[[:space:]]*#' | cat -s | sed -E \
    -e "s#\"pki_int/(sign|issue)/fixed\"#\"$(esc "$PKI_INT_MOUNT")/\\1/$(esc "$PKI_ROLE")\"#")
  log "writing policy $fixed_policy (fixed-CN role $PKI_ROLE)"
  write "sys/policies/acl/$fixed_policy" "{\"policy\":$(js "$policy")}"
fi

token_fields() { # METHOD: the fixed-CN policy only for the methods of PKI_ROLE_AUTH_METHODS
  local policies; policies=$(js "$POLICY_NAME")
  if [ -n "$fixed_policy" ]; then
    case " ${PKI_ROLE_AUTH_METHODS//,/ } " in *" $1 "*) policies+=",$(js "$fixed_policy")" ;; esac
  fi
  printf '"token_policies":[%s],"token_no_default_policy":true,"token_type":%s,"token_ttl":%s,"token_max_ttl":%s' \
    "$policies" "$(js "$TOKEN_TYPE")" "$(js "$TOKEN_TTL")" "$(js "$TOKEN_MAX_TTL")"
}

# ---- kubernetes auth ----------------------------------------------------------------------
if has_method kubernetes; then
  disable_local=$K8S_DISABLE_LOCAL_CA_JWT
  if [ -z "$disable_local" ]; then
    if [ -n "$K8S_CA_CERT_FILE" ]; then disable_local=true; else disable_local=false; fi
  fi
  body="{\"kubernetes_host\":$(js "$K8S_HOST"),\"disable_local_ca_jwt\":$disable_local"
  [ -z "$K8S_CA_CERT_FILE" ] || body+=",\"kubernetes_ca_cert\":$(js "$(file_or_die "$K8S_CA_CERT_FILE" K8S_CA_CERT_FILE)")"
  [ -z "$K8S_TOKEN_REVIEWER_JWT_FILE" ] || body+=",\"token_reviewer_jwt\":$(js "$(file_or_die "$K8S_TOKEN_REVIEWER_JWT_FILE" K8S_TOKEN_REVIEWER_JWT_FILE)")"
  [ -z "$K8S_PEM_KEYS_FILE" ] || body+=",\"pem_keys\":[$(js "$(file_or_die "$K8S_PEM_KEYS_FILE" K8S_PEM_KEYS_FILE)")]"
  [ -z "$K8S_ISSUER" ] || body+=",\"issuer\":$(js "$K8S_ISSUER")"
  log "configuring auth/$K8S_AUTH_MOUNT (kubernetes_host $K8S_HOST)"
  write "auth/$K8S_AUTH_MOUNT/config" "$body}"
  body="{\"bound_service_account_names\":$(jlist "$K8S_BOUND_SA_NAMES"),\"bound_service_account_namespaces\":$(jlist "$K8S_BOUND_SA_NAMESPACES"),\"audience\":$(js "$K8S_AUDIENCE"),\"alias_name_source\":\"serviceaccount_uid\",$(token_fields kubernetes)}"
  log "writing role auth/$K8S_AUTH_MOUNT/role/$K8S_ROLE"
  write "auth/$K8S_AUTH_MOUNT/role/$K8S_ROLE" "$body"
fi

# ---- jwt auth (the SA token checked against the issuer's key, no TokenReview) -------------
if has_method jwt; then
  body="{\"bound_issuer\":$(js "$JWT_BOUND_ISSUER")"
  if [ -n "$JWT_VALIDATION_PUBKEY_FILE" ]; then
    body+=",\"jwt_validation_pubkeys\":[$(js "$(file_or_die "$JWT_VALIDATION_PUBKEY_FILE" JWT_VALIDATION_PUBKEY_FILE)")]"
  elif [ -n "$JWT_JWKS_URL" ]; then
    body+=",\"jwks_url\":$(js "$JWT_JWKS_URL")"
  else
    body+=",\"oidc_discovery_url\":$(js "$JWT_OIDC_DISCOVERY_URL")"
  fi
  log "configuring auth/$JWT_AUTH_MOUNT"
  write "auth/$JWT_AUTH_MOUNT/config" "$body}"
  # Projected SA tokens nest the identity under "kubernetes.io"; map it to the same alias
  # metadata names the kubernetes method uses, so the templated PKI role works for both.
  body="{\"role_type\":\"jwt\",\"user_claim\":\"sub\",\"bound_audiences\":$(jlist "$JWT_AUDIENCE"),"
  body+="\"bound_claims_type\":\"glob\",\"bound_claims\":{\"/kubernetes.io/namespace\":$(jlist "$JWT_BOUND_SA_NAMESPACES"),\"/kubernetes.io/serviceaccount/name\":$(jlist "$JWT_BOUND_SA_NAMES")},"
  body+="\"claim_mappings\":{\"/kubernetes.io/namespace\":\"service_account_namespace\",\"/kubernetes.io/serviceaccount/name\":\"service_account_name\",\"/kubernetes.io/serviceaccount/uid\":\"service_account_uid\"},"
  body+="$(token_fields jwt)}"
  log "writing role auth/$JWT_AUTH_MOUNT/role/$JWT_ROLE"
  write "auth/$JWT_AUTH_MOUNT/role/$JWT_ROLE" "$body"
fi

# ---- approle (outside Kubernetes) ---------------------------------------------------------
approle_role_id=""
if has_method approle; then
  log "writing role auth/$APPROLE_AUTH_MOUNT/role/$APPROLE_ROLE"
  write "auth/$APPROLE_AUTH_MOUNT/role/$APPROLE_ROLE" \
    "{\"bind_secret_id\":true,\"secret_id_ttl\":$(js "$APPROLE_SECRET_ID_TTL"),\"secret_id_num_uses\":0,$(token_fields approle)}"
  if [ -n "$APPROLE_ROLE_ID" ]; then
    write "auth/$APPROLE_AUTH_MOUNT/role/$APPROLE_ROLE/role-id" "{\"role_id\":$(js "$APPROLE_ROLE_ID")}"
  fi
  approle_role_id=$(v read -field=role_id "auth/$APPROLE_AUTH_MOUNT/role/$APPROLE_ROLE/role-id")
  # Keep a secret id that still works; make a new one otherwise.
  keep=false
  if [ -s "$APPROLE_SECRET_ID_FILE" ]; then
    # Captured, not piped into grep -q: under pipefail an early grep exit can SIGPIPE the CLI
    # and make a working secret id look dead.
    lookup=$(write "auth/$APPROLE_AUTH_MOUNT/role/$APPROLE_ROLE/secret-id/lookup" \
      "{\"secret_id\":$(js "$(cat "$APPROLE_SECRET_ID_FILE")")}" -format=json 2>/dev/null) || lookup=""
    case "$lookup" in *'"secret_id_accessor"'*) keep=true ;; esac
  fi
  if [ "$keep" = false ]; then
    log "creating a secret id for $APPROLE_ROLE in $APPROLE_SECRET_ID_FILE"
    mkdir -p "$(dirname "$APPROLE_SECRET_ID_FILE")"
    secret_id=$(write "auth/$APPROLE_AUTH_MOUNT/role/$APPROLE_ROLE/secret-id" '{}' -field=secret_id)
    (umask 077; printf '%s' "$secret_id" >"$APPROLE_SECRET_ID_FILE.tmp")
    mv -f "$APPROLE_SECRET_ID_FILE.tmp" "$APPROLE_SECRET_ID_FILE"
  fi
fi

# ---- outputs ------------------------------------------------------------------------------
{
  printf 'TRUST_ANCHOR_PEM=%s\n' "$OUT_DIR/trust-anchor.pem"
  printf 'INTERMEDIATE_PEM=%s\n' "$OUT_DIR/intermediate.pem"
  printf 'CA_CHAIN_PEM=%s\n' "$OUT_DIR/ca-chain.pem"
  printf 'PKI_ROOT_MOUNT=%s\n' "$PKI_ROOT_MOUNT"
  printf 'PKI_INT_MOUNT=%s\n' "$PKI_INT_MOUNT"
  printf 'PKI_INT_ISSUER_ID=%s\n' "$int_issuer"
  printf 'PKI_ROLE=%s\n' "$PKI_ROLE"
  printf 'PKI_TEMPLATED_ROLE=%s\n' "$PKI_TEMPLATED_ROLE"
  printf 'POLICY_NAME=%s\n' "$POLICY_NAME"
  printf 'PKI_ROLE_POLICY_NAME=%s\n' "$fixed_policy"
  if has_method kubernetes; then
    printf 'K8S_AUTH_MOUNT=%s\nK8S_AUTH_ACCESSOR=%s\nK8S_ROLE=%s\n' "$K8S_AUTH_MOUNT" "$k8s_accessor" "$K8S_ROLE"
  fi
  if has_method jwt; then
    printf 'JWT_AUTH_MOUNT=%s\nJWT_AUTH_ACCESSOR=%s\nJWT_ROLE=%s\n' "$JWT_AUTH_MOUNT" "$jwt_accessor" "$JWT_ROLE"
  fi
  if has_method approle; then
    printf 'APPROLE_AUTH_MOUNT=%s\nAPPROLE_AUTH_ACCESSOR=%s\nAPPROLE_ROLE=%s\nAPPROLE_ROLE_ID=%s\nAPPROLE_SECRET_ID_FILE=%s\n' \
      "$APPROLE_AUTH_MOUNT" "$approle_accessor" "$APPROLE_ROLE" "$approle_role_id" "$APPROLE_SECRET_ID_FILE"
  fi
} >"$OUT_DIR/outputs.env"
cat "$OUT_DIR/outputs.env"
log "done; register $OUT_DIR/intermediate.pem as the IAM Roles Anywhere trust anchor (aws/README.md)"
