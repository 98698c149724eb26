"""vault/configure.sh and vault/dev.sh against a real OpenBao dev server.

What operators run on a real Vault must give a PKI whose leaves IAM Roles Anywhere accepts
(checked with the fake Roles Anywhere's own leaf/path checks), per-ServiceAccount CNs, a policy
that grants nothing else, and working kubernetes/jwt/approle logins; and it must be idempotent.
"""
from __future__ import annotations

import os
import pathlib
import subprocess

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fakes.rolesanywhere import check_leaf, check_path
from support.openbao import CONFIGURE, ROOT, free_port, free_port_pair
from support.pki import new_key


# ---- helpers ------------------------------------------------------------------------------

def pem_certs(data: bytes | str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data.encode() if isinstance(data, str) else data)


def csr_pem(key, cn: str) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def login(ob, method: str = "kubernetes", ns: str = "payments", name: str = "bootstrapper",
          **mint) -> dict:
    """Log in like the bootstrapper; returns the ``auth`` block (asserts success)."""
    if method == "approle":
        body = {"role_id": ob.approle_role_id,
                "secret_id": ob.approle_secret_id_file.read_text()}
    else:
        body = {"role": ob.k8s_role if method == "kubernetes" else ob.jwt_role,
                "jwt": ob.mint_sa_token(ns, name, **mint)}
    r = ob.api("POST", f"auth/{method}/login", body, token=None)
    assert r.status_code == 200, r.text
    return r.json()["auth"]


def sign(ob, token: str, role: str, cn: str, key=None, mount: str | None = None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    return ob.api("POST", f"{mount or ob.pki_mount}/sign/{role}",
                  {"csr": csr_pem(key, cn), "ttl": "1h"}, token=token)


def assert_roles_anywhere_leaf(data: dict, root_pem: bytes, cn: str) -> x509.Certificate:
    """The leaf Vault returned is what IAM Roles Anywhere accepts, chained [int, root]."""
    leaf = pem_certs(data["certificate"])[0]
    assert leaf.version == x509.Version.v3
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert not (ku.key_cert_sign or ku.crl_sign or ku.key_encipherment)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    chain = [pem_certs(c)[0] for c in data["ca_chain"]]
    root = pem_certs(root_pem)[0]
    assert len(chain) == 2 and chain[1] == root and chain[0] != root, "ca_chain is not [int, root]"
    leaf.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(root)
    # The independent Roles Anywhere oracle: leaf rules and path to the anchor (root only).
    check_leaf(leaf)
    path = check_path(leaf, [chain[0]], [root], leaf.not_valid_before_utc)
    assert path[-1] == root
    return leaf


def run_configure(env: dict, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CONFIGURE)], env=env, capture_output=True, text=True,
                          timeout=timeout)


# ---- configure.sh -------------------------------------------------------------------------

def test_configure_is_idempotent_with_a_generated_root(openbao_factory):
    ob = openbao_factory(configure=False)
    first = ob.configure(PKI_ROOT_BUNDLE_FILE="")         # operators' default: Vault makes the root
    out1 = dict(ob.outputs)
    anchor1 = pathlib.Path(out1["TRUST_ANCHOR_PEM"]).read_bytes()
    secret1 = ob.approle_secret_id_file.read_text()
    assert "generating the root CA" in first.stderr
    assert "creating an intermediate CA" in first.stderr

    second = ob.configure(PKI_ROOT_BUNDLE_FILE="")
    assert second.returncode == 0
    for verb in ("generating", "creating", "enabling", "importing"):
        assert verb not in second.stderr, second.stderr
    assert ob.outputs == out1
    assert pathlib.Path(ob.outputs["TRUST_ANCHOR_PEM"]).read_bytes() == anchor1
    assert ob.approle_secret_id_file.read_text() == secret1, "a working secret id was replaced"
    assert oct(ob.approle_secret_id_file.stat().st_mode & 0o777) == "0o600"

    # Root EC P-384 self-signed, intermediate EC P-256 signed by it, both usable CAs.
    root = pem_certs(anchor1)
    assert len(root) == 1
    root = root[0]
    inter = pem_certs(ob.int_ca_pem)[0]
    assert root.issuer == root.subject
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp384r1"
    assert inter.public_key().curve.name == "secp256r1"
    inter.verify_directly_issued_by(root)
    for ca in (root, inter):
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert pem_certs(ob.ca_chain_pem) == [inter, root]
    r = ob.api("GET", f"{ob.pki_mount}/cert/ca_chain", token=None)
    assert pem_certs(r.json()["data"]["ca_chain"]) == [inter, root]

    # The policies as written: the templated role in the shared one, the fixed-CN role in its own.
    policy = ob.api("GET", "sys/policies/acl/bootstrapper").json()["data"]["policy"]
    for path in ("pki_int/sign/workload", "pki_int/issue/workload", "auth/token/revoke-self"):
        assert f'path "{path}"' in policy
    assert "pki_int/sign/ci" not in policy and "pki_int/issue/ci" not in policy
    fixed = ob.api("GET", "sys/policies/acl/pki-fixed-ci").json()["data"]["policy"]
    assert 'path "pki_int/sign/ci"' in fixed and 'path "pki_int/issue/ci"' in fixed
    assert "workload" not in fixed and "auth/token" not in fixed


@pytest.mark.parametrize("key_kind", ["p256", "p384", "rsa2048", "rsa4096"])
def test_signed_leaf_is_a_roles_anywhere_client_certificate(openbao, key_kind):
    ob = openbao
    token = login(ob)["client_token"]
    r = sign(ob, token, ob.pki_role, ob.fixed_cn, key=new_key(key_kind))
    assert r.status_code == 200, r.text
    assert_roles_anywhere_leaf(r.json()["data"], ob.root_ca_pem, ob.fixed_cn)


def test_issue_mode_returns_a_key_and_the_same_kind_of_leaf(openbao):
    ob = openbao
    token = login(ob)["client_token"]
    r = ob.api("POST", f"{ob.pki_mount}/issue/{ob.pki_role}",
               {"common_name": ob.fixed_cn, "key_type": "rsa", "key_bits": 2048,
                "private_key_format": "pkcs8"}, token=token)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    leaf = assert_roles_anywhere_leaf(data, ob.root_ca_pem, ob.fixed_cn)
    key = serialization.load_pem_private_key(data["private_key"].encode(), None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()


def test_fixed_role_refuses_another_common_name(openbao):
    ob = openbao
    token = login(ob, "approle")["client_token"]
    assert sign(ob, token, ob.fixed_role, ob.fixed_role_cn).status_code == 200
    for role in (ob.fixed_role, ob.pki_templated_role):
        r = sign(ob, token, role, "evil.example.com")
        assert r.status_code == 400
        assert "not allowed by this role" in r.json()["errors"][0]


@pytest.mark.parametrize("method", ["kubernetes", "jwt"])
def test_templated_role_allows_only_the_callers_own_service_account(openbao, method):
    ob = openbao
    for me, other in ((ob.sa_name, ob.other_sa_name), (ob.other_sa_name, ob.sa_name)):
        token = login(ob, method, name=me)["client_token"]
        own = f"{me}.{ob.namespace}.workload.internal"
        r = sign(ob, token, ob.pki_templated_role, own)
        assert r.status_code == 200, r.text
        assert_roles_anywhere_leaf(r.json()["data"], ob.root_ca_pem, own)
        r = sign(ob, token, ob.pki_templated_role, f"{other}.{ob.namespace}.workload.internal")
        assert r.status_code == 400, r.text
        assert "not allowed by this role" in r.json()["errors"][0]


def test_policy_grants_pki_sign_and_issue_only(openbao):
    ob = openbao
    auth = login(ob)
    token = auth["client_token"]
    assert auth["policies"] == ["bootstrapper"]            # token_no_default_policy
    assert auth["metadata"]["service_account_name"] == ob.sa_name
    denied = [
        ("POST", f"{ob.pki_mount}/sign/not-ours", {"csr": "x"}),
        ("POST", f"{ob.pki_mount}/sign/{ob.fixed_role}", {"csr": "x"}),   # approle's only
        ("POST", f"{ob.pki_mount}/roles/{ob.pki_role}", {"allowed_domains": ["x"]}),
        ("POST", f"{ob.pki_root_mount}/root/sign-intermediate", {"csr": "x"}),
        ("GET", "sys/mounts", None),
        ("POST", "auth/token/create", {}),
    ]
    for method, path, body in denied:
        r = ob.api(method, path, body, token=token)
        assert r.status_code == 403, (path, r.text)
        assert "permission denied" in r.json()["errors"][0]
    assert ob.api("GET", "auth/token/lookup-self", token=token).status_code == 200
    assert ob.api("POST", "auth/token/revoke-self", token=token).status_code == 204
    assert ob.token_lookup(token) is None


def test_kubernetes_login_goes_through_the_tokenreview_fake(openbao, tokenreview):
    ob = openbao
    before = tokenreview.count
    login(ob)
    review = tokenreview.reviews[-1]
    assert tokenreview.count == before + 1
    assert review["bearer_ok"] and review["answer"] == "authenticated"
    assert review["audiences"] == [ob.audience]

    tokenreview.deny = True
    r = ob.api("POST", "auth/kubernetes/login",
               {"role": ob.k8s_role, "jwt": ob.mint_sa_token()}, token=None)
    tokenreview.deny = False
    assert r.status_code == 403 and "permission denied" in r.json()["errors"][0]

    refusals = {
        "audience": ob.mint_sa_token(aud="https://kubernetes.default.svc.cluster.local"),
        "service account name not authorized": ob.mint_sa_token(name="intruder"),
        "namespace not authorized": ob.mint_sa_token(ns="default"),
        "exp": ob.mint_sa_token(ttl=-600),
    }
    for text, jwt in refusals.items():
        r = ob.api("POST", "auth/kubernetes/login", {"role": ob.k8s_role, "jwt": jwt}, token=None)
        assert r.status_code == 403, (text, r.text)
        assert text in r.json()["errors"][0], (text, r.text)


def role_and_cn(ob, method: str) -> tuple[str, str]:
    """What a login by ``method`` signs with: approle has no ServiceAccount, so the fixed role."""
    if method == "approle":
        return ob.fixed_role, ob.fixed_role_cn
    return ob.pki_role, ob.fixed_cn


def test_jwt_and_approle_logins_get_their_policies(openbao):
    ob = openbao
    for method, policies in (("jwt", ["bootstrapper"]),
                             ("approle", ["bootstrapper", ob.fixed_policy])):
        auth = login(ob, method)
        assert sorted(auth["policies"]) == policies, method
        r = sign(ob, auth["client_token"], *role_and_cn(ob, method))
        assert r.status_code == 200, (method, r.text)
    r = ob.api("POST", "auth/jwt/login",
               {"role": ob.jwt_role, "jwt": ob.mint_sa_token(aud="other")}, token=None)
    assert r.status_code == 400 and "error validating token" in r.json()["errors"][0]


def test_rotating_the_intermediate_keeps_the_trust_anchor(openbao_factory):
    ob = openbao_factory()
    old_int, old_issuer = ob.int_ca_pem, ob.outputs["PKI_INT_ISSUER_ID"]
    proc = ob.configure(PKI_ROTATE_INTERMEDIATE="1")
    assert "creating an intermediate CA" in proc.stderr
    assert ob.int_ca_pem != old_int
    assert ob.outputs["PKI_INT_ISSUER_ID"] != old_issuer
    assert pathlib.Path(ob.outputs["TRUST_ANCHOR_PEM"]).read_bytes().strip() == ob.root_ca_pem.strip()
    token = login(ob)["client_token"]
    r = sign(ob, token, ob.pki_role, ob.fixed_cn)
    assert r.status_code == 200, r.text
    leaf = assert_roles_anywhere_leaf(r.json()["data"], ob.root_ca_pem, ob.fixed_cn)
    leaf.verify_directly_issued_by(pem_certs(ob.int_ca_pem)[0])
    # The old intermediate stays as a (non-default) issuer: certificates it signed still chain.
    issuers = ob.api("LIST", f"{ob.pki_mount}/issuers").json()["data"]["keys"]
    assert old_issuer in issuers
    # And a plain re-run after the rotation changes nothing.
    again = ob.configure()
    assert "creating" not in again.stderr


def cert_stored(ob, serial: str) -> bool:
    """Whether Vault kept the certificate with this serial (``LIST <mount>/certs``)."""
    r = ob.api("LIST", f"{ob.pki_mount}/certs")
    if r.status_code == 404:
        return False
    assert r.status_code == 200, r.text
    norm = {k.replace("-", ":").lower() for k in r.json()["data"]["keys"]}   # Vault: "-", OpenBao: ":"
    return serial.lower() in norm


def test_pki_roles_store_and_lease_nothing_by_default(openbao):
    """no_store + no lease: a pod start costs PKI no storage write (vault/README.md, "Cost")."""
    ob = openbao
    for role in (ob.fixed_role, ob.pki_templated_role):
        data = ob.api("GET", f"{ob.pki_mount}/roles/{role}").json()["data"]
        assert data["no_store"] is True and data["generate_lease"] is False, (role, data)
        assert data["cn_validations"] == ["hostname"], (role, data)
    auth = login(ob)
    assert auth["token_type"] == "service" and auth["accessor"]
    r = sign(ob, auth["client_token"], ob.pki_role, ob.fixed_cn)
    assert r.status_code == 200, r.text
    assert not r.json()["lease_id"]
    assert not cert_stored(ob, r.json()["data"]["serial_number"])


def test_batch_tokens_and_stored_leased_certificates_on_request(openbao_factory):
    ob = openbao_factory(configure=False)
    ob.configure(TOKEN_TYPE="batch", PKI_NO_STORE="false", PKI_GENERATE_LEASE="true")
    for role in (ob.fixed_role, ob.pki_templated_role):
        data = ob.api("GET", f"{ob.pki_mount}/roles/{role}").json()["data"]
        assert data["no_store"] is False and data["generate_lease"] is True, (role, data)
    accessors = ob.token_accessors()
    for method in ("kubernetes", "jwt", "approle"):
        auth = login(ob, method)
        # A batch token: not in storage (no accessor), not renewable, still the same policy.
        assert auth["token_type"] == "batch", (method, auth)
        assert not auth["accessor"] and auth["renewable"] is False
        assert auth["policies"][0] == "bootstrapper"
        role, cn = role_and_cn(ob, method)
        r = sign(ob, auth["client_token"], role, cn)
        assert r.status_code == 200, (method, r.text)
        assert r.json()["lease_id"].startswith(f"{ob.pki_mount}/sign/{role}/")
        assert cert_stored(ob, r.json()["data"]["serial_number"])
        r = ob.api("POST", "auth/token/revoke-self", token=auth["client_token"])
        assert r.status_code == 400 and "batch tokens cannot be revoked" in r.text, r.text
    assert ob.token_accessors() == accessors, "a batch login stored a token"

    # Back to the defaults: service tokens, nothing stored or leased by PKI.
    ob.configure()
    auth = login(ob)
    assert auth["token_type"] == "service" and auth["accessor"]
    r = sign(ob, auth["client_token"], ob.pki_role, ob.fixed_cn)
    assert r.status_code == 200 and not r.json()["lease_id"], r.text
    assert not cert_stored(ob, r.json()["data"]["serial_number"])


def test_configure_with_other_names_rewrites_the_policy(openbao_factory):
    ob = openbao_factory(configure=False)
    # A fixed-CN role for a login role that binds exactly one ServiceAccount.
    ob.configure(PKI_INT_MOUNT="ra_int", PKI_ROOT_MOUNT="ra_root", PKI_ROLE="client",
                 PKI_TEMPLATED_ROLE="", AUTH_METHODS="kubernetes", PKI_ROLE_AUTH_METHODS="kubernetes",
                 K8S_BOUND_SA_NAMES="bootstrapper", K8S_AUTH_MOUNT="k8s",
                 K8S_ROLE="app", POLICY_NAME="iamra")
    policy = ob.api("GET", "sys/policies/acl/iamra").json()["data"]["policy"]
    assert "pki_int" not in policy and "workload" not in policy and "ra_int" not in policy
    fixed = ob.api("GET", "sys/policies/acl/pki-fixed-client").json()["data"]["policy"]
    assert 'path "ra_int/sign/client"' in fixed and 'path "ra_int/issue/client"' in fixed
    assert ob.api("GET", "sys/policies/acl/bootstrapper").status_code == 404
    r = ob.api("POST", "auth/k8s/login", {"role": "app", "jwt": ob.mint_sa_token()}, token=None)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["auth"]["policies"]) == ["iamra", "pki-fixed-client"]
    token = r.json()["auth"]["client_token"]
    r = sign(ob, token, "client", ob.fixed_role_cn, mount="ra_int")
    assert r.status_code == 200, r.text
    assert_roles_anywhere_leaf(r.json()["data"], ob.root_ca_pem, ob.fixed_role_cn)
    assert ob.api("GET", "sys/auth/jwt").status_code == 400       # not enabled
    assert ob.api("GET", "ra_int/roles/workload").status_code == 404


@pytest.mark.parametrize("settings, message", [
    ({"AUTH_METHODS": "kubernetes ldap"}, "unknown method 'ldap'"),
    ({"AUTH_METHODS": "kubernetes", "K8S_HOST": ""}, "K8S_HOST is required"),
    ({"AUTH_METHODS": "jwt"}, "jwt auth needs JWT_VALIDATION_PUBKEY_FILE"),
    ({"TOKEN_TYPE": "default"}, "TOKEN_TYPE: 'default' is neither service nor batch"),
    ({"PKI_NO_STORE": "yes"}, "PKI_NO_STORE: 'yes' is neither true nor false"),
    ({"PKI_GENERATE_LEASE": "1"}, "PKI_GENERATE_LEASE: '1' is neither true nor false"),
])
def test_configure_refuses_incomplete_settings(tmp_path, settings, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "K8S_", "JWT_"))}
    env.update(VAULT_ADDR="http://127.0.0.1:9", VAULT_TOKEN="x", OUT_DIR=str(tmp_path), **settings)
    proc = run_configure(env)
    assert proc.returncode != 0
    assert message in proc.stderr


SHARED_CN = "would give one fixed CN to"


@pytest.mark.parametrize("settings, message", [
    # A fixed CN for a login role that admits more than one ServiceAccount.
    ({"K8S_BOUND_SA_NAMES": "*"}, SHARED_CN + " every ServiceAccount that K8S_BOUND_SA_NAMES='*'"),
    ({"K8S_BOUND_SA_NAMES": "app,web"}, SHARED_CN + " every ServiceAccount"),
    ({"K8S_BOUND_SA_NAMESPACES": "team-a, team-b"}, SHARED_CN + " every ServiceAccount"),
    ({"K8S_BOUND_SA_NAMESPACES": "*", "K8S_BOUND_SA_NAMES": "app"}, SHARED_CN + " every"),
    ({"K8S_BOUND_SA_NAMES": "app-*"}, SHARED_CN + " every ServiceAccount"),
    ({"AUTH_METHODS": "kubernetes jwt", "JWT_VALIDATION_PUBKEY_FILE": "/dev/null",
      "JWT_BOUND_SA_NAMES": "*"}, SHARED_CN + " every ServiceAccount that JWT_BOUND_SA_NAMES='*'"),
    # ... or to two identities at once.
    ({"AUTH_METHODS": "kubernetes approle"},
     SHARED_CN + " ServiceAccount team-a/app and the approle role bootstrapper"),
    ({"AUTH_METHODS": "kubernetes jwt", "JWT_VALIDATION_PUBKEY_FILE": "/dev/null",
      "JWT_BOUND_SA_NAMES": "web"}, SHARED_CN + " ServiceAccount team-a/app and ServiceAccount team-a/web"),
    # A fixed CN inside the per-ServiceAccount name space, or not a host name.
    ({"PKI_ROLE_ALLOWED_DOMAINS": "app.team-b.workload.internal"},
     "'app.team-b.workload.internal' is in the per-ServiceAccount name space"),
    ({"PKI_ROLE_ALLOWED_DOMAINS": "ok.hosts.internal,APP.Team-B.Workload.Internal."},
     "'APP.Team-B.Workload.Internal.' is in the per-ServiceAccount name space"),
    ({"PKI_ROLE_ALLOWED_DOMAINS": "*.hosts.internal"}, "'*.hosts.internal' is not a host name"),
    ({"PKI_ROLE_ALLOWED_DOMAINS": "a@b.hosts.internal"}, "'a@b.hosts.internal' is not a host name"),
    ({"PKI_ROLE_ALLOWED_DOMAINS": ""}, "PKI_ROLE=fixed needs PKI_ROLE_ALLOWED_DOMAINS"),
    ({"PKI_ROLE": ""}, "PKI_ROLE_ALLOWED_DOMAINS is set but PKI_ROLE is empty"),
    ({"PKI_ROLE": "workload"}, "PKI_ROLE and PKI_TEMPLATED_ROLE are both 'workload'"),
    ({"PKI_ROLE_AUTH_METHODS": "jwt"}, "PKI_ROLE_AUTH_METHODS: 'jwt' is not in AUTH_METHODS"),
])
def test_configure_refuses_a_cn_shared_between_accounts(tmp_path, settings, message):
    """Checked before configure.sh talks to Vault (VAULT_ADDR points nowhere): one line, exit 1."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "BAO_", "K8S_", "JWT_", "PKI_", "AUTH_", "APPROLE_"))}
    env.update(VAULT_ADDR="http://127.0.0.1:9", VAULT_TOKEN="x", OUT_DIR=str(tmp_path),
               K8S_HOST="http://127.0.0.1:9", K8S_BOUND_SA_NAMES="app",
               K8S_BOUND_SA_NAMESPACES="team-a", PKI_ROLE="fixed",
               PKI_ROLE_ALLOWED_DOMAINS="app.hosts.internal")
    env.update(settings)
    proc = run_configure(env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("configure: error: "), proc.stderr
    assert message in lines[0], lines[0]
    assert proc.stdout == "" and not (tmp_path / "outputs.env").exists()


def test_the_fixed_role_is_off_unless_named(openbao_factory):
    """Defaults: no fixed-CN role, the templated role only, a non-empty audience."""
    ob = openbao_factory(configure=False)
    env = {k: v for k, v in ob.configure_env().items()
           if not k.startswith(("PKI_ROLE", "PKI_TEMPLATED", "K8S_AUDIENCE", "JWT_AUDIENCE",
                                "K8S_BOUND"))}
    proc = run_configure(env)
    assert proc.returncode == 0, proc.stderr
    outputs = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert outputs["PKI_ROLE"] == "" and outputs["PKI_ROLE_POLICY_NAME"] == ""
    assert outputs["PKI_TEMPLATED_ROLE"] == "workload"
    roles = ob.api("LIST", f"{ob.pki_mount}/roles").json()["data"]["keys"]
    assert roles == ["workload"]
    role = ob.api("GET", "auth/kubernetes/role/bootstrapper").json()["data"]
    assert role["audience"] == "vault"
    assert role["token_policies"] == ["bootstrapper"]
    jwt_role = ob.api("GET", "auth/jwt/role/bootstrapper").json()["data"]
    assert jwt_role["bound_audiences"] == ["vault"]
    approle = ob.api("GET", "auth/approle/role/bootstrapper").json()["data"]
    assert approle["token_policies"] == ["bootstrapper"]
    # A token for the default audience of a pod (the API server's) does not log in.
    r = ob.api("POST", "auth/kubernetes/login",
               {"role": "bootstrapper", "jwt": ob.mint_sa_token(aud="openbao")}, token=None)
    assert r.status_code == 403 and "audience" in r.text, r.text
    r = ob.api("POST", "auth/kubernetes/login",
               {"role": "bootstrapper", "jwt": ob.mint_sa_token(aud="vault")}, token=None)
    assert r.status_code == 200, r.text


# ---- dev.sh -------------------------------------------------------------------------------

def test_dev_sh_start_env_stop(tmp_path):
    port = free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "IAMRA_"))}
    env.update(DEV_DIR=str(tmp_path / "dev"), DEV_ADDR=f"127.0.0.1:{port}",
               DEV_K8S_ADDR=f"127.0.0.1:{free_port()}")
    dev = ROOT / "vault" / "dev.sh"

    def run(cmd):
        return subprocess.run(["bash", str(dev), cmd], env=env, capture_output=True, text=True,
                              timeout=120)

    try:
        start = run("start")
        assert start.returncode == 0, start.stderr
        status = run("status")
        assert status.returncode == 0 and "OpenBao: running" in status.stdout
        text = run("env").stdout
        values = dict(line.removeprefix("export ").split("=", 1)
                      for line in text.splitlines() if line.startswith("export "))
        assert values["VAULT_ADDR"] == f"http://127.0.0.1:{port}"
        assert values["IAMRA_VAULT_ROLE"] == "bootstrapper"
        # The env file is enough for a kubernetes login and a templated-role signature.
        jwt = pathlib.Path(values["IAMRA_SERVICE_ACCOUNT_TOKEN_FILE"]).read_text()
        r = requests.post(f"{values['VAULT_ADDR']}/v1/auth/kubernetes/login",
                          json={"role": values["IAMRA_VAULT_ROLE"], "jwt": jwt}, timeout=10)
        assert r.status_code == 200, r.text
        token = r.json()["auth"]["client_token"]
        r = requests.post(
            f"{values['VAULT_ADDR']}/v1/{values['IAMRA_PKI_MOUNT']}/sign/{values['IAMRA_PKI_ROLE']}",
            json={"csr": csr_pem(ec.generate_private_key(ec.SECP256R1()),
                                 "bootstrapper.payments.workload.internal")},
            headers={"X-Vault-Token": token}, timeout=10)
        assert r.status_code == 200, r.text
        assert (tmp_path / "dev" / "unseal-key").read_text().strip()
        again = run("start")                                  # idempotent while running
        assert again.returncode == 0 and "already running" in again.stderr
    finally:
        stop = run("stop")
    assert stop.returncode == 0
    assert run("status").returncode != 0
