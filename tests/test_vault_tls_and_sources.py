"""Vault's TLS conventions (VAULT_CACERT, VAULT_CAPATH, VAULT_SKIP_VERIFY) against a TLS front
for the real OpenBao dev server, and `credential-process` taking its certificate from Vault.

The TLS front is a small Python TLS terminator with a certificate from a throwaway CA, relaying
to OpenBao's plain listener, so the binary speaks real TLS 1.2+/1.3 to reach Vault."""
import base64
import datetime
import ipaddress
import json
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fakes.rolesanywhere import FakeRolesAnywhere
from support.cli import assert_error
from support.fake_ra import REGION, ra_flags


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool, san_ip=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san_ip:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class TlsFront:
    """TLS on a free loopback port, relaying each connection to ``target_port`` in plain TCP."""

    def __init__(self, tmp, target_port: int):
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = _cert("vault test CA", ca_key, None, ca_key, ca=True)
        leaf = _cert("127.0.0.1", ca_key, ca.subject, key, ca=False, san_ip="127.0.0.1")
        self.ca_pem = tmp / "vault-ca.pem"
        self.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (tmp / "capath").mkdir()
        (tmp / "capath" / "ca.pem").write_bytes(self.ca_pem.read_bytes())
        self.capath = tmp / "capath"
        (tmp / "front.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                                        + ca.public_bytes(serialization.Encoding.PEM))
        (tmp / "front.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(tmp / "front.pem", tmp / "front.key")
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.handshakes_failed = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_failed += 1
            raw.close()
            return
        up = socket.create_connection(("127.0.0.1", self.target_port))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(up, conn), daemon=True).start()
        pump(conn, up)

    def close(self):
        self.sock.close()


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
    assert front.handshakes_failed == 1, "a refused certificate is not retried"
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
