# Policy of the token iamra-bootstrap gets at login (kubernetes, jwt or approle role).
#
# It may only have the Vault PKI sign (CSR, key stays in the pod) or issue (Vault makes the key)
# a client certificate under the per-ServiceAccount role, and look up / revoke its own token.
# Nothing else: no read of the CA key, no roles, no other mount. A fixed-CN role, when
# configured, is granted by its own policy (fixed-cn.hcl) and only to one identity.
#
# The paths below are the defaults (mount `pki_int`, templated role `workload`);
# vault/configure.sh rewrites exactly these quoted paths from PKI_INT_MOUNT and
# PKI_TEMPLATED_ROLE (and drops the templated lines when that role is disabled) before
# `policy write`. With the defaults this file is usable as is:
#   bao policy write bootstrapper vault/policies/bootstrapper.hcl

# Per-ServiceAccount role: CN <sa>.<namespace>.<suffix>, enforced by Vault from the login's
# entity alias metadata.
path "pki_int/sign/workload" { # templated
  capabilities = ["update"]    # templated
}                              # templated
path "pki_int/issue/workload" { # templated
  capabilities = ["update"]     # templated
}                               # templated

# The roles set token_no_default_policy, so grant the two self-service paths explicitly:
# iamra-bootstrap revokes its token when done (unless --keep-vault-token).
path "auth/token/revoke-self" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
