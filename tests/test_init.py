"""`iamra-bootstrap init` end to end: a real OpenBao (vault/configure.sh), the fake Kubernetes
TokenReview API and the fake IAM Roles Anywhere endpoint trusting the OpenBao PKI root.

Written against docs/cli-contract.md (flags, env names, exit codes, one error line) and
docs/vault-openbao.md (what the server answers). Every run passes
``--termination-log`` pointing at an empty file under tmp_path (as the kubelet provides one):
the binary writes the failure reason only into an existing file.
"""
from __future__ import annotations

import base64
import configparser
import json
import os
import pathlib
import re
import stat
import subprocess
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from fakes.rolesanywhere import FakeRolesAnywhere
from support.fake_ra import ACCOUNT, PROFILE_ARN, REGION, ROLE_ARN, TA_ARN, ra_flags
from support.openbao import free_port

ERROR_PREFIX = "iamra-bootstrap: error: "
DURATION_RE = re.compile(r'duration_ms["\']?\s*[=:]\s*"?\d+')


# ---- fixtures and helpers -----------------------------------------------------------------

def make_ra(ob) -> FakeRolesAnywhere:
    """A fake Roles Anywhere whose only trust anchor is the OpenBao PKI root."""
    return FakeRolesAnywhere([ob.root_ca_pem], region=REGION).start()


@pytest.fixture
def ra(openbao):
    fake = make_ra(openbao)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def sa_token_file(openbao, tmp_path):
    return openbao.write_sa_token(tmp_path / "sa" / "token")


class Run:
    """One finished binary run, with timing and parsed error line."""

    def __init__(self, proc: subprocess.CompletedProcess, elapsed: float, tmp: pathlib.Path):
        self.proc, self.elapsed, self.tmp = proc, elapsed, tmp
        self.returncode, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]

    @property
    def error(self) -> str:
        """The failure line (asserting the contract: exactly one, the last, stdout empty)."""
        assert self.returncode != 0, "the run succeeded"
        assert self.stdout == "", f"stdout on failure: {self.stdout!r}"
        assert len(self.error_lines) == 1, self.stderr
        return self.error_lines[0]

    def ok(self) -> "Run":
        assert self.returncode == 0, f"exit {self.returncode}\n{self.stderr}"
        assert not self.error_lines, self.stderr
        return self

    @property
    def termination_log(self) -> str:
        path = self.tmp / "termination-log"
        return path.read_text() if path.exists() else ""


# Flags of `init` that take a value (docs/cli-contract.md); the others are switches.
VALUE_FLAGS = {
    "--trust-anchor-arn", "--profile-arn", "--role-arn", "--session-duration", "--region",
    "--endpoint", "--role-session-name", "--vault-addr", "--vault-auth", "--vault-auth-mount",
    "--vault-role", "--service-account-token-file", "--approle-role-id",
    "--approle-secret-id-file", "--pki-mount", "--pki-role", "--pki-mode", "--common-name",
    "--key-type", "--cert-ttl", "--timeout", "--credentials-file", "--profile", "--config-file",
    "--sts-endpoint", "--log-format", "--log-level", "--termination-log",
}


def merge_flags(base: list, extra: list) -> list[str]:
    """``base`` then ``extra``, each flag once: a value flag in ``extra`` replaces the base
    one (a repeated flag is a usage error for the binary)."""
    values: dict[str, str] = {}
    switches: list[str] = []
    for args in (base, extra):
        args = [str(a) for a in args]
        i = 0
        while i < len(args):
            flag = args[i]
            if flag in VALUE_FLAGS:
                values[flag] = args[i + 1]
                i += 2
            else:
                assert flag.startswith("--"), f"unexpected argument {flag!r}"
                if flag not in switches:
                    switches.append(flag)
                i += 1
    return [x for kv in values.items() for x in kv] + switches


@pytest.fixture
def init(run_bin, tmp_path, openbao, sa_token_file):
    """``init(*extra, ob=openbao, ra=..., env=None, cn=FIXED or None, timeout="60s")``: run
    ``iamra-bootstrap init`` with kubernetes auth as payments/bootstrapper, the fixed PKI role
    and a credentials file under tmp_path; a flag in ``extra`` replaces the default one."""

    def go(*extra, ob=None, ra=None, env=None, cn="default", timeout="60s", proc_timeout=150,
           base=True):
        ob = ob or openbao
        defaults = []
        if base:
            defaults = [*ra_flags(ra), "--vault-addr", ob.addr, "--vault-role", ob.k8s_role,
                        "--service-account-token-file", sa_token_file,
                        "--pki-role", ob.pki_role,
                        "--credentials-file", tmp_path / "aws" / "credentials",
                        "--termination-log", tmp_path / "termination-log",
                        "--timeout", timeout]
            if cn == "default":
                defaults += ["--common-name", ob.fixed_cn]
            elif cn is not None:
                defaults += ["--common-name", cn]
        # Kubernetes creates the termination log; the binary only writes to an existing one.
        (tmp_path / "termination-log").touch()
        args = ["init", *merge_flags(defaults, list(extra))]
        start = time.monotonic()
        proc = run_bin(args, env=env, timeout=proc_timeout)
        return Run(proc, time.monotonic() - start, tmp_path)

    return go


def parse_ini(text: str) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(comment_prefixes=("#", ";"), inline_comment_prefixes=None)
    cp.read_string(text)
    return cp


def read_ini(path) -> configparser.RawConfigParser:
    return parse_ini(pathlib.Path(path).read_text())


def assert_profile(path, profile: str, creds: dict) -> None:
    cp = read_ini(path)
    assert cp.has_section(profile), pathlib.Path(path).read_text()
    assert cp.get(profile, "aws_access_key_id") == creds["accessKeyId"]
    assert cp.get(profile, "aws_secret_access_key") == creds["secretAccessKey"]
    assert cp.get(profile, "aws_session_token") == creds["sessionToken"]


def sent_leaf(ra) -> x509.Certificate:
    rec = ra.requests[-1]
    return x509.load_der_x509_certificate(base64.b64decode(rec.headers["x-amz-x509"]))


def sent_chain(ra) -> list[x509.Certificate]:
    value = ra.requests[-1].headers.get("x-amz-x509-chain")
    if not value:
        return []
    return [x509.load_der_x509_certificate(base64.b64decode(p)) for p in value.split(",")]


def cn_of(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def pem_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def login_paths(ob, mark) -> list[str]:
    return [t["path"] for t in ob.issued_tokens(mark)]


def vault_paths(ob, mark) -> list[str]:
    return [r["path"] for r in ob.requests_since(mark)]


def create_token(ob, ttl: str = "10m") -> str:
    r = ob.api("POST", "auth/token/create",
               {"policies": ["bootstrapper", ob.fixed_policy], "no_default_policy": True,
                "ttl": ttl})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


# ---- auth methods -------------------------------------------------------------------------

def test_kubernetes_auth_is_the_default(init, openbao, ra, tmp_path, tokenreview):
    mark, reviews = openbao.audit_mark(), tokenreview.count
    run = init(ra=ra).ok()
    assert ra.count == 1
    assert login_paths(openbao, mark) == ["auth/kubernetes/login"]
    assert tokenreview.count == reviews + 1
    creds_file = tmp_path / "aws" / "credentials"
    assert_profile(creds_file, "default", ra.issued[-1])
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(creds_file.parent.stat().st_mode) == 0o700
    assert cn_of(sent_leaf(ra)) == openbao.fixed_cn
    assert run.stdout == ""


def test_jwt_auth(init, openbao, ra, tmp_path):
    mark = openbao.audit_mark()
    init("--vault-auth", "jwt", ra=ra).ok()
    assert login_paths(openbao, mark) == ["auth/jwt/login"]
    assert_profile(tmp_path / "aws" / "credentials", "default", ra.issued[-1])


def test_approle_auth(init, openbao, ra, tmp_path):
    mark = openbao.audit_mark()
    init("--vault-auth", "approle", "--approle-role-id", openbao.approle_role_id,
         "--approle-secret-id-file", openbao.approle_secret_id_file,
         "--pki-role", openbao.fixed_role, cn=openbao.fixed_role_cn, ra=ra).ok()
    assert login_paths(openbao, mark) == ["auth/approle/login"]
    assert_profile(tmp_path / "aws" / "credentials", "default", ra.issued[-1])


def test_token_auth_from_vault_token(init, openbao, ra, tmp_path):
    token = create_token(openbao)
    mark = openbao.audit_mark()
    # A token without a ServiceAccount signs with the fixed-CN role.
    init("--vault-auth", "token", "--pki-role", openbao.fixed_role,
         env={"VAULT_TOKEN": token}, ra=ra, cn=openbao.fixed_role_cn).ok()
    assert login_paths(openbao, mark) == []
    signs = [r for r in openbao.requests_since(mark)
             if r["path"] == f"pki_int/sign/{openbao.fixed_role}"]
    assert signs and signs[-1]["client_token"] == token
    assert_profile(tmp_path / "aws" / "credentials", "default", ra.issued[-1])


def test_auth_method_and_mount_from_the_environment(init, openbao, ra):
    mark = openbao.audit_mark()
    init(env={"IAMRA_VAULT_AUTH": "jwt", "IAMRA_VAULT_AUTH_MOUNT": "jwt"}, ra=ra).ok()
    assert login_paths(openbao, mark) == ["auth/jwt/login"]


# ---- key types and PKI modes --------------------------------------------------------------

@pytest.mark.parametrize("key_type, kind, size", [
    (None, "ec", "secp256r1"),
    ("ec-p256", "ec", "secp256r1"),
    ("ec-p384", "ec", "secp384r1"),
    ("rsa-2048", "rsa", 2048),
    ("rsa-3072", "rsa", 3072),
    ("rsa-4096", "rsa", 4096),
])
@pytest.mark.parametrize("mode", ["sign", "issue"])
def test_key_types_and_pki_modes(init, openbao, ra, key_type, kind, size, mode):
    mark = openbao.audit_mark()
    extra = ["--key-type", key_type] if key_type else []
    if mode == "issue":
        extra += ["--pki-mode", "issue"]
    init(*extra, ra=ra).ok()
    assert ra.requests[-1].verdict == "accepted"
    public = sent_leaf(ra).public_key()
    if kind == "ec":
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == size
        assert ra.requests[-1].headers["authorization"].startswith("AWS4-X509-ECDSA-SHA256 ")
    else:
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == size
        assert ra.requests[-1].headers["authorization"].startswith("AWS4-X509-RSA-SHA256 ")
    paths = vault_paths(openbao, mark)
    assert f"pki_int/{mode}/{openbao.pki_role}" in paths
    other = "issue" if mode == "sign" else "sign"
    assert f"pki_int/{other}/{openbao.pki_role}" not in paths


def test_pki_mode_and_key_type_from_the_environment(init, openbao, ra):
    mark = openbao.audit_mark()
    init(env={"IAMRA_PKI_MODE": "issue", "IAMRA_KEY_TYPE": "rsa-2048"}, ra=ra).ok()
    assert f"pki_int/issue/{openbao.pki_role}" in vault_paths(openbao, mark)
    assert isinstance(sent_leaf(ra).public_key(), rsa.RSAPublicKey)


def test_chain_carries_the_intermediate_and_not_the_root(init, openbao, ra):
    init(ra=ra).ok()
    rec = ra.requests[-1]
    assert rec.verdict == "accepted"                 # the fake trusts only the root
    chain = sent_chain(ra)
    root, inter = pem_cert(openbao.root_ca_pem), pem_cert(openbao.int_ca_pem)
    assert root not in chain, "the self-signed root was sent in X-Amz-X509-Chain"
    assert all(c.subject != c.issuer for c in chain), "a self-signed certificate in the chain"
    assert chain == [inter]
    sent_leaf(ra).verify_directly_issued_by(inter)
    assert "x-amz-x509-chain" in rec.signed_headers


def test_cert_ttl(init, openbao, ra):
    init("--cert-ttl", "30m", ra=ra).ok()
    leaf = sent_leaf(ra)
    lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
    assert 30 * 60 <= lifetime <= 31 * 60                 # NotBefore is backdated 30 s


# ---- common name --------------------------------------------------------------------------

@pytest.mark.parametrize("sa", ["bootstrapper", "reporter"])
def test_default_common_name_from_the_service_account(init, openbao, ra, tmp_path, sa):
    token = openbao.write_sa_token(tmp_path / "sa" / f"{sa}.jwt", name=sa)
    init("--pki-role", openbao.pki_templated_role, "--service-account-token-file", token,
         cn=None, ra=ra).ok()
    assert cn_of(sent_leaf(ra)) == f"{sa}.payments.workload.internal"


def test_common_name_from_vault_cert_cn(init, openbao, ra):
    init(cn=None, env={"VAULT_CERT_CN": openbao.fixed_cn}, ra=ra).ok()
    assert cn_of(sent_leaf(ra)) == openbao.fixed_cn


def test_common_name_refused_by_the_pki_role(init, openbao, ra):
    run = init(cn="evil.example.com", ra=ra)
    assert run.returncode == 3
    assert "common name evil.example.com not allowed by this role" in run.error
    assert ra.requests == []
    assert run.elapsed < 20


def test_templated_role_refuses_another_service_accounts_name(init, openbao, ra):
    run = init("--pki-role", openbao.pki_templated_role,
               cn=f"{openbao.other_sa_name}.payments.workload.internal", ra=ra)
    assert run.returncode == 3
    assert "not allowed by this role" in run.error


# ---- Vault availability -------------------------------------------------------------------

def test_openbao_started_two_seconds_after_the_bootstrapper(init, openbao_factory, tmp_path):
    ob = openbao_factory(start_delay=2.0)
    fake = make_ra(ob)                   # the root is known before the server starts
    try:
        token = ob.write_sa_token(tmp_path / "sa" / "late.jwt")
        run = init("--service-account-token-file", token, ob=ob, ra=fake, timeout="90s")
        ob.wait_ready()
        run.ok()
        assert run.elapsed >= 2.0
        assert fake.count == 1
        assert_profile(tmp_path / "aws" / "credentials", "default", fake.issued[-1])
    finally:
        fake.stop()


def test_sealed_until_unsealed(init, openbao_factory, tmp_path):
    ob = openbao_factory(sealed=True)
    assert ob.api("GET", "sys/health", token=None).status_code == 503
    fake = make_ra(ob)
    timer = threading.Timer(2.0, ob.unseal)
    try:
        token = ob.write_sa_token(tmp_path / "sa" / "sealed.jwt")
        timer.start()
        run = init("--service-account-token-file", token, ob=ob, ra=fake, timeout="90s")
        timer.join()
        run.ok()
        assert run.elapsed >= 2.0
        assert fake.count == 1
    finally:
        timer.cancel()
        fake.stop()


def test_rate_limited_login_is_retried_after_retry_after(init, openbao_factory, tmp_path):
    ob = openbao_factory()
    fake = make_ra(ob)
    try:
        ob.set_rate_limit("auth/kubernetes/login", rate=1, interval="1s", block_interval="3s")
        # Use up the quota so the bootstrapper's first login is refused.
        body = {"role": ob.k8s_role, "jwt": ob.mint_sa_token()}
        codes = [ob.api("POST", "auth/kubernetes/login", body, token=None) for _ in range(2)]
        assert codes[-1].status_code == 429, codes[-1].text
        assert "rate limit quota exceeded" in codes[-1].text
        assert codes[-1].headers.get("Retry-After")
        mark = ob.audit_mark()
        token = ob.write_sa_token(tmp_path / "sa" / "rl.jwt")
        run = init("--service-account-token-file", token, ob=ob, ra=fake, timeout="60s")
        run.ok()
        assert run.elapsed >= 1.0
        assert login_paths(ob, mark) == ["auth/kubernetes/login"]
        assert fake.count == 1
    finally:
        fake.stop()


# ---- failures -----------------------------------------------------------------------------

def test_policy_denial_fails_fast_naming_mount_and_role(init, openbao, ra):
    run = init("--pki-role", "not-granted", cn=openbao.fixed_cn, ra=ra, timeout="60s")
    assert run.returncode == 3
    assert run.elapsed < 15, f"took {run.elapsed:.1f}s: a 403 is not retried"
    err = run.error
    assert "pki_int" in err and "not-granted" in err
    assert "permission denied" in err
    assert ra.requests == []
    assert "permission denied" in run.termination_log


def test_kubernetes_login_denied_by_tokenreview_lists_usual_causes(init, openbao, ra, tokenreview):
    tokenreview.deny = True
    run = init(ra=ra, timeout="60s")
    assert run.returncode == 3
    assert run.elapsed < 15
    err = run.error.lower()
    assert "permission denied" in err                       # Vault's own text
    assert "kubernetes" in err and "bootstrapper" in err    # mount and role
    assert "audience" in err                                 # one of the usual causes
    assert "service account" in err or "serviceaccount" in err
    assert ra.requests == []


def test_roles_anywhere_denial_fails(init, openbao, ra):
    ra.fail_next(1, 403, "AccessDeniedException", "Untrusted Signing Certificate")
    run = init(ra=ra, timeout="60s")
    assert run.returncode == 4
    err = run.error
    assert "AccessDeniedException" in err and "Untrusted Signing Certificate" in err
    assert run.elapsed < 15
    assert "Untrusted Signing Certificate" in run.termination_log


def test_unwritable_credentials_file_is_an_output_error(init, openbao, ra, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    run = init("--credentials-file", blocker / "credentials", ra=ra)
    assert run.returncode == 5
    assert str(blocker) in run.error


@pytest.mark.parametrize("flags, message", [
    (["--key-type", "ed25519"], "ed25519"),
    (["--vault-auth", "ldap"], "ldap"),
    (["--pki-mode", "generate"], "generate"),
])
def test_usage_errors_exit_2(init, ra, flags, message):
    run = init(*flags, ra=ra)
    assert run.returncode == 2
    assert message in run.error
    assert ra.requests == []


def test_termination_log_gets_the_failure_reason(init, openbao, ra, tmp_path):
    run = init(cn="evil.example.com", ra=ra)
    assert run.returncode == 3
    text = run.termination_log
    assert "not allowed by this role" in text
    assert len(text.encode()) <= 4096


def test_termination_log_is_not_created(init, openbao, ra, tmp_path):
    absent = tmp_path / "no-such-termination-log"
    run = init("--termination-log", absent, cn="evil.example.com", ra=ra)
    assert run.returncode == 3
    assert not absent.exists()


# ---- the credentials file -----------------------------------------------------------------

EXISTING = """\
# written by hand; keep me
[default]
aws_access_key_id = AKIAOLDDEFAULT000000
aws_secret_access_key = olddefaultsecret
aws_session_token = olddefaulttoken

[other]
; comment inside another profile
aws_access_key_id = AKIAOTHER00000000000
aws_secret_access_key = othersecret
region = eu-west-1

[ci]
aws_access_key_id = AKIACI00000000000000
aws_secret_access_key = cisecret
"""


@pytest.mark.parametrize("profile", ["default", "ci", "brand-new"])
def test_existing_profiles_and_comments_survive(init, openbao, ra, tmp_path, profile):
    creds_file = tmp_path / "aws" / "credentials"
    creds_file.parent.mkdir(mode=0o700)
    creds_file.write_text(EXISTING)
    init("--profile", profile, ra=ra).ok()
    text = creds_file.read_text()
    assert "# written by hand; keep me" in text
    assert "; comment inside another profile" in text
    assert_profile(creds_file, profile, ra.issued[-1])
    cp, before = read_ini(creds_file), parse_ini(EXISTING)
    for section in before.sections():
        if section != profile:
            assert dict(cp.items(section)) == dict(before.items(section)), section
    assert sorted(cp.sections()) == sorted(set(before.sections()) | {profile})
    assert text.count(f"[{profile}]") == 1
    if profile == "default":
        assert "AKIAOLDDEFAULT000000" not in text and "olddefaulttoken" not in text


@pytest.mark.parametrize("failure", ["roles-anywhere", "vault"])
def test_failure_leaves_the_previous_file_byte_identical(init, openbao, ra, tmp_path, failure):
    creds_file = tmp_path / "aws" / "credentials"
    creds_file.parent.mkdir(mode=0o700)
    creds_file.write_bytes(EXISTING.encode())
    creds_file.chmod(0o600)
    before = creds_file.stat()
    if failure == "roles-anywhere":
        ra.fail_next(1, 403, "AccessDeniedException", "denied for this test")
        run = init(ra=ra)
    else:
        run = init(cn="evil.example.com", ra=ra)
    assert run.returncode != 0
    assert creds_file.read_bytes() == EXISTING.encode()
    assert creds_file.stat().st_ino == before.st_ino
    assert sorted(p.name for p in creds_file.parent.iterdir()) == ["credentials"], "temp file left"


def test_configuration_from_iamra_environment_variables(init, openbao, ra, tmp_path):
    target = tmp_path / "shared" / "creds"
    init(base=False, ra=ra, env={
        "IAMRA_TRUST_ANCHOR_ARN": TA_ARN, "IAMRA_PROFILE_ARN": PROFILE_ARN,
        "IAMRA_ROLE_ARN": ROLE_ARN, "IAMRA_ENDPOINT": ra.url,
        "VAULT_ADDR": openbao.addr, "VAULT_ROLE": openbao.k8s_role,
        "IAMRA_SERVICE_ACCOUNT_TOKEN_FILE": str(openbao.write_sa_token(tmp_path / "t.jwt")),
        "IAMRA_PKI_ROLE": openbao.pki_role, "IAMRA_COMMON_NAME": openbao.fixed_cn,
        "AWS_SHARED_CREDENTIALS_FILE": str(target), "IAMRA_PROFILE": "from-env",
        "IAMRA_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "IAMRA_SESSION_DURATION": "900",
    }).ok()
    assert_profile(target, "from-env", ra.issued[-1])
    assert ra.requests[-1].json["durationSeconds"] == 900


def test_legacy_variables_and_the_default_credentials_path(init, openbao, ra, tmp_path):
    init(base=False, ra=ra, env={
        "ANCHOR_ARN": TA_ARN, "PROFILE_ARN": PROFILE_ARN, "ROLE_ARN": ROLE_ARN,
        "AWS_ENDPOINT_URL_ROLESANYWHERE": ra.url,
        "VAULT_ADDR": openbao.addr, "VAULT_ROLE": openbao.k8s_role,
        "IAMRA_SERVICE_ACCOUNT_TOKEN_FILE": str(openbao.write_sa_token(tmp_path / "t.jwt")),
        "IAMRA_PKI_ROLE": openbao.pki_role, "VAULT_CERT_CN": openbao.fixed_cn,
        "IAMRA_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }).ok()
    # run_bin sets HOME to tmp_path/home: the default is ~/.aws/credentials.
    assert_profile(tmp_path / "home" / ".aws" / "credentials", "default", ra.issued[-1])


def test_first_variable_wins(init, openbao, ra, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    init(base=False, ra=ra, env={
        "IAMRA_TRUST_ANCHOR_ARN": TA_ARN, "ANCHOR_ARN": "arn:aws:nonsense",
        "IAMRA_PROFILE_ARN": PROFILE_ARN, "IAMRA_ROLE_ARN": ROLE_ARN,
        "IAMRA_ENDPOINT": ra.url, "AWS_ENDPOINT_URL_ROLESANYWHERE": dead,
        "IAMRA_VAULT_ADDR": openbao.addr, "VAULT_ADDR": dead,
        "IAMRA_VAULT_ROLE": openbao.k8s_role, "VAULT_ROLE": "no-such-role",
        "IAMRA_SERVICE_ACCOUNT_TOKEN_FILE": str(openbao.write_sa_token(tmp_path / "t.jwt")),
        "IAMRA_PKI_ROLE": openbao.pki_role,
        "IAMRA_COMMON_NAME": openbao.fixed_cn, "VAULT_CERT_CN": "evil.example.com",
        "IAMRA_CREDENTIALS_FILE": str(tmp_path / "first"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "second"),
        "IAMRA_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }).ok()
    assert_profile(tmp_path / "first", "default", ra.issued[-1])
    assert not (tmp_path / "second").exists()


@pytest.mark.parametrize("profile, section", [("default", "default"), ("ci", "profile ci")])
def test_config_file_records_the_region(init, openbao, ra, tmp_path, profile, section):
    config = tmp_path / "aws" / "config"
    init("--profile", profile, "--config-file", config, ra=ra).ok()
    cp = read_ini(config)
    assert cp.get(section, "region") == REGION


def test_botocore_reads_the_written_profile(init, openbao, ra, tmp_path, monkeypatch):
    import botocore.session

    creds_file, config = tmp_path / "aws" / "credentials", tmp_path / "aws" / "config"
    init("--profile", "bootstrap", "--config-file", config, ra=ra).ok()
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds_file))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    session = botocore.session.Session(profile="bootstrap")
    creds = session.get_credentials().get_frozen_credentials()
    issued = ra.issued[-1]
    assert (creds.access_key, creds.secret_key, creds.token) == (
        issued["accessKeyId"], issued["secretAccessKey"], issued["sessionToken"])
    assert session.get_config_variable("region") == REGION


# ---- secrets, tokens, logs ----------------------------------------------------------------

@pytest.mark.parametrize("auth, mode", [("kubernetes", "sign"), ("approle", "issue")])
def test_no_secret_in_output_at_debug_level(init, openbao, ra, tmp_path, sa_token_file, auth, mode):
    mark = openbao.audit_mark()
    extra = ["--log-level", "debug", "--debug", "--pki-mode", mode]
    if auth == "approle":
        extra += ["--vault-auth", "approle", "--approle-role-id", openbao.approle_role_id,
                  "--approle-secret-id-file", openbao.approle_secret_id_file,
                  "--pki-role", openbao.fixed_role, "--common-name", openbao.fixed_role_cn]
    run = init(*extra, ra=ra).ok()
    issued = openbao.issued_tokens(mark)
    assert len(issued) == 1
    client_token = issued[0]["client_token"]
    creds = ra.issued[-1]
    secrets = {
        "vault client token": client_token,
        "vault token body": client_token.split(".", 1)[-1],
        "AWS secret access key": creds["secretAccessKey"],
        "AWS session token": creds["sessionToken"],
        "AWS session token prefix": creds["sessionToken"][:24],
    }
    if auth == "kubernetes":
        jwt = sa_token_file.read_text()
        secrets["SA JWT"] = jwt
        secrets["SA JWT signature"] = jwt.rsplit(".", 1)[1]
    else:
        secrets["approle secret id"] = openbao.approle_secret_id_file.read_text()
    if mode == "issue":
        entries = [e for e in openbao.audit_entries(mark)
                   if e.get("type") == "response"
                   and (e.get("request") or {}).get("path") == f"pki_int/issue/{openbao.fixed_role}"]
        key_pem = entries[-1]["response"]["data"]["private_key"]
        secrets["issued private key"] = key_pem.splitlines()[1]
    for what, value in secrets.items():
        assert value and value not in run.output, f"{what} appears in the output"
    assert "PRIVATE KEY" not in run.output


def test_vault_token_is_revoked_afterwards(init, openbao, ra):
    mark = openbao.audit_mark()
    init(ra=ra).ok()
    issued = openbao.issued_tokens(mark)
    assert [t["path"] for t in issued] == ["auth/kubernetes/login"]
    assert openbao.token_lookup(issued[0]["client_token"]) is None
    assert "auth/token/revoke-self" in vault_paths(openbao, mark)
    assert openbao.lookup_accessor(issued[0]["accessor"]) is None


def test_keep_vault_token_leaves_it_valid(init, openbao, ra):
    mark = openbao.audit_mark()
    init("--keep-vault-token", ra=ra).ok()
    issued = openbao.issued_tokens(mark)
    data = openbao.token_lookup(issued[0]["client_token"])
    assert data is not None and data["policies"] == ["bootstrapper"]
    assert "auth/token/revoke-self" not in vault_paths(openbao, mark)
    openbao.api("POST", "auth/token/revoke", {"token": issued[0]["client_token"]})


def test_vault_token_is_revoked_after_a_roles_anywhere_failure(init, openbao, ra):
    mark = openbao.audit_mark()
    ra.fail_next(1, 403, "AccessDeniedException", "no")
    assert init(ra=ra).returncode == 4
    issued = openbao.issued_tokens(mark)
    assert openbao.token_lookup(issued[0]["client_token"]) is None


def test_batch_token_is_neither_stored_nor_revoked(init, openbao_factory):
    """A login role with token_type=batch (TOKEN_TYPE=batch vault/configure.sh): nothing stored,
    no revoke-self request (it could only fail), no warning."""
    ob = openbao_factory(configure=False)
    ob.configure(TOKEN_TYPE="batch")
    fake = make_ra(ob)
    try:
        accessors = ob.token_accessors()
        mark = ob.audit_mark()
        run = init("--log-format", "json", ob=ob, ra=fake).ok()
    finally:
        fake.stop()
    issued = ob.issued_tokens(mark)
    assert len(issued) == 1 and issued[0]["client_token"].startswith("b."), issued
    assert not issued[0]["accessor"]
    assert "auth/token/revoke-self" not in vault_paths(ob, mark)
    assert ob.token_accessors() == accessors
    records = [json.loads(ln) for ln in run.stderr.splitlines() if ln.strip()]
    assert not [r for r in records if r.get("level") in ("WARN", "ERROR")], run.stderr
    assert [r.get("token_type") for r in records if r.get("step") == "login"] == ["batch"]


def test_text_logs_one_line_per_step_with_duration(init, openbao, ra):
    run = init(ra=ra).ok()
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    timed = [ln for ln in lines if DURATION_RE.search(ln)]
    assert len(timed) >= 3, run.stderr        # at least login, certificate, session (+ write)


def test_json_logs_parse(init, openbao, ra):
    run = init("--log-format", "json", ra=ra).ok()
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert lines
    records = [json.loads(ln) for ln in lines]
    assert all(isinstance(r, dict) for r in records)
    timed = [r for r in records if "duration_ms" in r]
    assert len(timed) >= 3, run.stderr
    assert all(isinstance(r["duration_ms"], (int, float)) for r in timed)


def test_json_logs_on_failure_keep_the_error_line(init, openbao, ra):
    run = init("--log-format", "json", cn="evil.example.com", ra=ra,
               env={"IAMRA_LOG_LEVEL": "debug"})
    assert run.returncode == 3
    for ln in run.stderr.splitlines():
        if ln.strip() and not ln.startswith(ERROR_PREFIX):
            json.loads(ln)
    assert "not allowed by this role" in run.error


# ---- --verify against a local STS (moto) --------------------------------------------------

def test_verify_logs_the_assumed_identity(init, openbao, ra, moto_sts):
    import botocore.session

    run = init("--verify", "--sts-endpoint", moto_sts, ra=ra).ok()
    issued = ra.issued[-1]
    sts = botocore.session.Session().create_client(
        "sts", region_name=REGION, endpoint_url=moto_sts,
        aws_access_key_id=issued["accessKeyId"], aws_secret_access_key=issued["secretAccessKey"],
        aws_session_token=issued["sessionToken"])
    ident = sts.get_caller_identity()
    assert ident["Arn"] in run.stderr
    assert ident["Account"] in run.stderr
    assert ident["Account"] == ACCOUNT


def test_verify_failure_is_reported(init, openbao, ra):
    dead = f"http://127.0.0.1:{free_port()}"
    run = init("--verify", "--sts-endpoint", dead, ra=ra, timeout="10s")
    assert run.returncode != 0
    assert "sts" in run.error.lower() or "GetCallerIdentity" in run.error


@pytest.mark.parametrize("env,host", [
    ({"AWS_USE_FIPS_ENDPOINT": "true"}, "sts-fips.us-east-1.amazonaws.com:443"),
    ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "sts.us-east-1.api.aws:443"),
    ({"AWS_ENDPOINT_URL_STS": "https://sts.example.test"}, "sts.example.test:443"),
])
def test_verify_resolves_sts_like_the_sdks(init, openbao, ra, env, host):
    """The STS endpoint of --verify follows FIPS, dual-stack and AWS_ENDPOINT_URL_STS (the host
    is recorded by a CONNECT proxy that refuses the tunnel; Roles Anywhere is plain http here)."""
    from support.connect_proxy import RecordingConnectProxy

    proxy = RecordingConnectProxy().start()
    try:
        run = init("--verify", "--with-proxy", ra=ra, timeout="3s",
                   env={"HTTPS_PROXY": proxy.url, "https_proxy": proxy.url, **env})
        assert run.returncode != 0
        assert "GetCallerIdentity" in run.error or "sts" in run.error.lower()
        assert set(proxy.take()) == {host}
    finally:
        proxy.stop()
