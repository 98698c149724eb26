# Policy of one fixed-CN PKI role (vault/configure.sh PKI_ROLE; off by default), written as
# pki-fixed-<role> and granted only to the login roles of one identity (one ServiceAccount, or
# the approle role): whoever holds it can ask for any CN in the role's allowed_domains.
#
# vault/configure.sh rewrites the mount `pki_int` and the role `fixed` below from
# PKI_INT_MOUNT and PKI_ROLE.

path "pki_int/sign/fixed" {
  capabilities = ["update"]
}
path "pki_int/issue/fixed" {
  capabilities = ["update"]
}
