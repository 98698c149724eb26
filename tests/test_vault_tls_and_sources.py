"""Vault's TLS conventions (VAULT_CACERT, VAULT_CAPATH, VAULT_SKIP_VERIFY) against a TLS front
for the real OpenBao dev server, and `credential-process` taking its certificate from Vault.
The TLS front (``support.tls``) terminates TLS in front of OpenBao's plain listener."""
import base64
import json

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from fakes.rolesanywhere import FakeRolesAnywhere
from support.cli import assert_error
from support.fake_ra import REGION, ra_flags
from support.tls import TlsFront


@pytest.fixture
def front(openbao, tmp_path):
    port = int(openbao.addr.rsplit(":", 1)[1])
    f = TlsFront(tmp_path, port)
    yield f
    f.close()


@pytest.fixture
def ra(openbao):
    fake = FakeRolesAnywhere([openbao.root_ca_pem], region=REGION).start()
    yield fake
    fake.stop()


def vault_flags(openbao, tmp_path, addr):
    token = openbao.write_sa_token(tmp_path / "sa" / "token")
    return ["--vault-addr", addr, "--vault-role", openbao.k8s_role,
            "--service-account-token-file", token, "--pki-role", openbao.pki_role,
            "--common-name", openbao.fixed_cn, "--timeout", "20s"]


def init_args(openbao, ra, tmp_path, addr):
    return ["init", *ra_flags(ra), *vault_flags(openbao, tmp_path, addr),
            "--credentials-file", tmp_path / "aws" / "credentials"]


@pytest.mark.parametrize("trust", ["VAULT_CACERT", "VAULT_CAPATH", "VAULT_SKIP_VERIFY"])
def test_vault_over_tls(run_bin, openbao, ra, front, tmp_path, trust):
    env = {"VAULT_CACERT": str(front.ca_pem), "VAULT_CAPATH": str(front.capath),
           "VAULT_SKIP_VERIFY": "true"}
    proc = run_bin(init_args(openbao, ra, tmp_path, front.addr), env={trust: env[trust]})
    assert proc.returncode == 0, proc.stderr
    assert ra.count == 1
    assert "aws_session_token" in (tmp_path / "aws" / "credentials").read_text()


def test_untrusted_vault_certificate_fails_fast_with_the_fix(run_bin, openbao, ra, front, tmp_path):
    proc = run_bin(init_args(openbao, ra, tmp_path, front.addr))
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("iamra-bootstrap: error:")]
    assert proc.returncode == 3, proc.stderr
    assert len(line) == 1 and "VAULT_CACERT" in line[0] and "TLS certificate" in line[0], line
    assert front.failed_handshakes() == 1, "a refused certificate is not retried"
    assert ra.count == 0 and not (tmp_path / "aws" / "credentials").exists()


def test_vault_skip_verify_follows_go_parsebool(run_bin, openbao, ra, front, tmp_path):
    line = assert_error(run_bin(init_args(openbao, ra, tmp_path, front.addr),
                                env={"VAULT_SKIP_VERIFY": "yes"}), "VAULT_SKIP_VERIFY", exit_code=2)
    assert "true or false" in line


def test_credential_process_from_vault_with_cache(run_bin, openbao, ra, tmp_path):
    mark = openbao.audit_mark()
    args = ["credential-process", *ra_flags(ra), *vault_flags(openbao, tmp_path, openbao.addr),
            "--cache-dir", tmp_path / "cache"]
    first = run_bin(args)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["Version"] == 1 and doc["AccessKeyId"] == ra.issued[-1]["accessKeyId"]
    assert not first.stdout.endswith("\n") and first.stderr == ""
    # The certificate came from Vault: the fake saw a leaf with the PKI role's CN.
    leaf = x509.load_der_x509_certificate(base64.b64decode(ra.requests[-1].headers["x-amz-x509"]))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == openbao.fixed_cn
    # Served from the cache the second time: no new login, no new session.
    second = run_bin(args)
    assert second.returncode == 0 and json.loads(second.stdout) == doc
    assert ra.count == 1
    # The token it logged in with was revoked.
    tokens = openbao.issued_tokens(mark)
    assert tokens, "a login happened"
    for t in tokens:
        assert openbao.token_lookup(t["client_token"]) is None
