"""Keys that never leave the hardware (issue 18): a SoftHSM2 token through PKCS#11 and a
software TPM 2.0 (swtpm) through the TPM command protocol, with ``aws_signing_helper``'s command
lines (``docs/hardware-keys.md``; ``src/keys/pkcs11.rs``, ``src/keys/tpm.rs``).

Contract under test:

* PKCS#11 (the ``hardware`` host build, ``$IAMRA_HOST_BIN``): ``--certificate pkcs11:URI`` finds
  the certificate in the token and the key beside it (same id); ``--private-key pkcs11:`` with a
  certificate file; the module from ``--pkcs11-lib`` or p11-kit's proxy; the PIN from
  ``IAMRA_PKCS11_PIN``, ``--pkcs11-pin-file`` or ``pin-value=``; ``--reuse-pin`` for a
  ``CKA_ALWAYS_AUTHENTICATE`` key. ``credential-process`` and ``serve`` get credentials the
  verifying fake accepts; ``read-certificate-data`` lists every certificate with a URI that
  selects exactly it; ``sign-string`` signatures verify with ``cryptography``.
* The static build (``$IAMRA_BIN``) refuses ``pkcs11:`` with one line naming the build that has it.
* TPM (both builds; tested with the static one): TSS2 key files for EC P-256 (owner hierarchy),
  RSA-2048 with a password, EC P-384 under a persistent parent; ``TPM_DEVICE`` a UNIX socket.
* Failures: one line, exit 2, within ``--timeout``, no PIN or password in any output: wrong PIN,
  missing PIN, locked token, missing module, a module that is a FIFO or not a library, huge and
  malformed URIs, wrong TPM password, no password and no terminal, a key without the sign
  attribute, no TPM, a TPM socket that never answers or streams garbage.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import socket
import subprocess
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from conftest import ROOT, clean_env
from support.cli import EXIT_USAGE, assert_error, credential_process_json
from support.fake_ra import ra_flags
from support.hardware import PIN, TPM_PASSWORD, TOKEN
from support.openbao import free_port, terminate
from support.ra_client import b64


def _host_bin() -> pathlib.Path | None:
    env = os.environ.get("IAMRA_HOST_BIN")
    if env:
        return pathlib.Path(env)
    for cand in (ROOT / "target/quick/iamra-bootstrap", ROOT / "target/release/iamra-bootstrap"):
        if cand.exists():
            return cand
    return None


@pytest.fixture(scope="session")
def host_bin() -> pathlib.Path:
    b = _host_bin()
    if b is None or not b.exists():
        pytest.skip("no hardware host build: set IAMRA_HOST_BIN (scripts/test.sh builds it with "
                    "cargo build --profile quick --features hardware)")
    return b


def run(binary, args, env=None, home=None, timeout=60):
    home = home or pathlib.Path("/nonexistent-iamra-home")
    t = time.monotonic()
    proc = subprocess.run([str(binary), *[str(a) for a in args]], env=clean_env(env, home=home),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    proc.elapsed = time.monotonic() - t
    return proc


def assert_accepted(proc, fake, leaf, algorithm):
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    assert proc.stdout == credential_process_json(fake.issued[-1])
    rec = fake.requests[-1]
    assert rec.verdict == "accepted", rec.reason
    assert rec.headers["authorization"].startswith(f"{algorithm} Credential={leaf.serial}/")
    assert rec.headers["x-amz-x509"] == b64(leaf.cert)


def fixed_message(public_key) -> bytes:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        raw = public_key.public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint)
    else:
        raw = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return (b"AWS Roles Anywhere Credential Helper Signing Test" + b"1"
            + hashlib.sha256(b"IAM RA" + raw).digest())


def verify_sign_string(public_key, signature_hex: str, digest: str) -> None:
    h = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}[digest]
    sig = bytes.fromhex(signature_hex)
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(sig, fixed_message(public_key), padding.PKCS1v15(), h)
    else:
        public_key.verify(sig, fixed_message(public_key), ec.ECDSA(h))


# ---- PKCS#11 ---------------------------------------------------------------------------------

@pytest.fixture
def p11(host_bin, softhsm, fake_ra, tmp_path):
    """``credential-process`` of the host build against the fake, with the SoftHSM2 module."""

    def go(*args, env=None, module=True, timeout="20s"):
        lib = ["--pkcs11-lib", softhsm.module] if module else []
        return run(host_bin, ["credential-process", *ra_flags(fake_ra), "--no-cache",
                              "--timeout", timeout, *lib, *args],
                   env=softhsm.env(**(env or {})), home=tmp_path)

    return go


@pytest.mark.parametrize("name,algorithm", [("ec", "AWS4-X509-ECDSA-SHA256"),
                                            ("rsa", "AWS4-X509-RSA-SHA256")])
def test_token_certificate_and_key(p11, softhsm, fake_ra, name, algorithm):
    key = softhsm.keys[name]
    proc = p11("--certificate", key.uri, env={"IAMRA_PKCS11_PIN": PIN})
    assert_accepted(proc, fake_ra, key.leaf, algorithm)


def test_pin_sources_uri_and_file(p11, softhsm, fake_ra, tmp_path):
    key = softhsm.keys["ec"]
    proc = p11("--certificate", f"pkcs11:token={TOKEN};object={key.label}?pin-value={PIN}")
    assert_accepted(proc, fake_ra, key.leaf, "AWS4-X509-ECDSA-SHA256")
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    proc = p11("--certificate", key.uri, "--pkcs11-pin-file", pin_file)
    assert_accepted(proc, fake_ra, key.leaf, "AWS4-X509-ECDSA-SHA256")


def test_certificate_file_with_key_in_the_token(p11, softhsm, fake_ra):
    key = softhsm.keys["rsa"]
    proc = p11("--certificate", key.cert_pem, "--private-key", key.key_uri,
               env={"IAMRA_PKCS11_PIN": PIN})
    assert_accepted(proc, fake_ra, key.leaf, "AWS4-X509-RSA-SHA256")


def test_p11_kit_proxy_is_the_default_module(p11, softhsm, fake_ra):
    """No --pkcs11-lib: p11-kit's proxy, which exposes SoftHSM2 (registered by its package)."""
    key = softhsm.keys["ec"]
    proc = p11("--certificate", key.uri, env={"IAMRA_PKCS11_PIN": PIN}, module=False)
    assert_accepted(proc, fake_ra, key.leaf, "AWS4-X509-ECDSA-SHA256")


def test_always_authenticate_key_needs_reuse_pin_without_a_terminal(p11, softhsm, fake_ra):
    key = softhsm.keys["aa"]
    proc = p11("--certificate", key.uri, "--reuse-pin", env={"IAMRA_PKCS11_PIN": PIN})
    assert_accepted(proc, fake_ra, key.leaf, "AWS4-X509-RSA-SHA256")
    proc = p11("--certificate", key.uri, env={"IAMRA_PKCS11_PIN": PIN})
    assert_error(proc, "CKA_ALWAYS_AUTHENTICATE", "--reuse-pin", exit_code=EXIT_USAGE)
    assert not fake_ra.requests[1:], "no request without a usable key"


def test_pkcs11_failures_are_one_line_and_never_show_the_pin(p11, softhsm, fake_ra, tmp_path):
    key = softhsm.keys["ec"]
    wrong = "99999999"
    fifo = tmp_path / "module.fifo"
    os.mkfifo(fifo)
    not_a_lib = tmp_path / "not-a-lib.so"
    not_a_lib.write_text("just text\n")
    cases = [
        (p11("--certificate", key.uri, env={"IAMRA_PKCS11_PIN": wrong}), ["wrong PIN", TOKEN]),
        (p11("--certificate", key.uri), ["needs its user PIN", "IAMRA_PKCS11_PIN",
                                          "--pkcs11-pin-file"]),
        (p11("--certificate", "pkcs11:token=locked", env={"IAMRA_PKCS11_PIN": PIN}),
         ["locked", "SO PIN"]),
        (p11("--certificate", key.uri, "--pkcs11-lib", "/nonexistent/libnothing.so",
             env={"IAMRA_PKCS11_PIN": PIN}, module=False),
         ["cannot open the PKCS#11 module", "--pkcs11-lib"]),
        (p11("--certificate", key.uri, "--pkcs11-lib", fifo, env={"IAMRA_PKCS11_PIN": PIN},
             module=False), ["not a shared library"]),
        (p11("--certificate", key.uri, "--pkcs11-lib", not_a_lib,
             env={"IAMRA_PKCS11_PIN": PIN}, module=False), ["cannot load the PKCS#11 module"]),
        (p11("--certificate", "pkcs11:object=" + "x" * 100_000, env={"IAMRA_PKCS11_PIN": PIN}),
         ["over the 4096"]),
        (p11("--certificate", "pkcs11:token=iamra;colour=red"), ["unknown path attribute"]),
        (p11("--certificate", "pkcs11:id=%zz"), ["malformed PKCS#11 URI"]),
        (p11("--certificate", "pkcs11:token=nosuchtoken", env={"IAMRA_PKCS11_PIN": PIN}),
         ["no token matches", TOKEN]),
        (p11("--certificate", f"pkcs11:token={TOKEN};object=nothing",
             env={"IAMRA_PKCS11_PIN": PIN}), ["no certificate matches", "read-certificate-data"]),
        (p11("--certificate", f"pkcs11:token={TOKEN}", env={"IAMRA_PKCS11_PIN": PIN}),
         ["3 certificates match"]),
    ]
    for proc, needles in cases:
        assert_error(proc, *needles, exit_code=EXIT_USAGE)
        assert proc.elapsed < 20, f"{needles}: {proc.elapsed:.1f}s"
        assert wrong not in proc.stderr and PIN not in proc.stderr, proc.stderr
    assert not fake_ra.requests, "no request is sent without a usable key"


def test_pin_is_never_shown_even_with_debug(p11, softhsm, fake_ra):
    proc = p11("--certificate", "pkcs11:token=nosuch?pin-value=s3cr3tPIN", "--debug")
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "pin-value=**redacted**" in proc.stderr.splitlines()[-1]
    assert "s3cr3tPIN" not in proc.stderr + proc.stdout
    key = softhsm.keys["ec"]
    proc = p11("--certificate", key.uri, "--debug", env={"IAMRA_PKCS11_PIN": PIN})
    assert proc.returncode == 0, proc.stderr
    assert PIN not in proc.stderr


def test_a_wrong_pin_is_tried_once(p11, softhsm, fake_ra):
    """A wrong PIN counts toward the card's lockout: one login, never settled or retried."""
    proc = p11("--certificate", softhsm.keys["ec"].uri, env={"IAMRA_PKCS11_PIN": "99999999"})
    assert_error(proc, "wrong PIN", exit_code=EXIT_USAGE)
    assert proc.elapsed < 2.5, f"{proc.elapsed:.2f}s: read again as if mid-rotation?"


def test_static_build_refuses_pkcs11_naming_the_hardware_build(run_bin, softhsm, fake_ra):
    proc = run_bin(["credential-process", *ra_flags(fake_ra), "--no-cache", "--certificate",
                    softhsm.keys["ec"].uri], env=softhsm.env(IAMRA_PKCS11_PIN=PIN))
    if proc.returncode == 0:
        pytest.skip("IAMRA_BIN is a hardware build")
    assert_error(proc, "need the hardware build", "--features hardware", exit_code=EXIT_USAGE)


def test_read_certificate_data_lists_each_certificate_with_its_own_uri(host_bin, softhsm,
                                                                       tmp_path):
    base = ["read-certificate-data", "--pkcs11-lib", softhsm.module]
    proc = run(host_bin, [*base, "--certificate", f"pkcs11:token={TOKEN}"], env=softhsm.env(),
               home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Matching identities\n"), proc.stdout
    uris = [line[len("URI: "):] for line in proc.stdout.splitlines() if line.startswith("URI: ")]
    assert len(uris) == 3, proc.stdout
    by_serial = {f"{k.serial:X}": k for k in softhsm.keys.values()}
    for uri in uris:
        one = run(host_bin, [*base, "--certificate", uri], env=softhsm.env(), home=tmp_path)
        assert one.returncode == 0, one.stderr
        entries = [l for l in one.stdout.splitlines() if l.startswith("Serial Number: ")]
        assert len(entries) == 1, one.stdout
        key = by_serial[entries[0][len("Serial Number: "):]]
        fp = hashlib.sha1(key.leaf.cert_der).hexdigest()
        assert f"Hex Fingerprint: {fp}" in one.stdout
        assert f"URI: {uri}" in one.stdout
    none = run(host_bin, [*base, "--certificate", f"pkcs11:token={TOKEN};object=nothing"],
               env=softhsm.env(), home=tmp_path)
    assert none.returncode == 0 and none.stdout == "No matching identities\n", none


@pytest.mark.parametrize("name", ["ec", "rsa", "aa"])
@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_sign_string_in_the_token(host_bin, softhsm, tmp_path, name, digest):
    key = softhsm.keys[name]
    proc = run(host_bin, ["sign-string", "--pkcs11-lib", softhsm.module, "--reuse-pin",
                          "--certificate", key.uri, "--digest", digest, "--format", "text"],
               env=softhsm.env(IAMRA_PKCS11_PIN=PIN), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    verify_sign_string(key.leaf.cert.public_key(), proc.stdout, digest)


class Imds:
    """IMDSv2 as an SDK reads it."""

    def __init__(self, base: str):
        self.base = base

    def credentials(self) -> dict:
        token = requests.put(f"{self.base}/latest/api/token", timeout=5,
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).text
        h = {"X-aws-ec2-metadata-token": token}
        path = f"{self.base}/latest/meta-data/iam/security-credentials/"
        role = requests.get(path, headers=h, timeout=5).text.strip()
        return requests.get(path + role, headers=h, timeout=5).json()


def serve_until_ready(binary, args, env, home, timeout=30):
    port = free_port()
    proc = subprocess.Popen([str(binary), "serve", "--port", str(port), *map(str, args)],
                            env=clean_env(env, home=home), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, Imds(base)
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    terminate(proc)
    raise AssertionError("serve never had credentials")


def test_serve_with_a_token_key(host_bin, softhsm, fake_ra, tmp_path):
    key = softhsm.keys["rsa"]
    proc, imds = serve_until_ready(host_bin, [*ra_flags(fake_ra), "--pkcs11-lib", softhsm.module,
                                              "--certificate", key.uri],
                                   softhsm.env(IAMRA_PKCS11_PIN=PIN), tmp_path)
    try:
        creds = imds.credentials()
        assert creds["AccessKeyId"] == fake_ra.issued[-1]["accessKeyId"]
        assert fake_ra.requests[-1].verdict == "accepted"
        assert fake_ra.requests[-1].headers["x-amz-x509"] == b64(key.leaf.cert)
    finally:
        terminate(proc)
    assert PIN not in proc.stderr.read()


# ---- TPM 2.0 ---------------------------------------------------------------------------------

@pytest.fixture
def tpm_cp(iamra_bin, swtpm, fake_ra, tmp_path):
    """``credential-process`` of the static build against the fake, with the swtpm socket."""

    def go(*args, env=None, timeout="20s"):
        return run(iamra_bin, ["credential-process", *ra_flags(fake_ra), "--no-cache",
                               "--timeout", timeout, *args],
                   env={**swtpm.env(), **(env or {})}, home=tmp_path)

    return go


@pytest.mark.parametrize("name,extra,algorithm", [
    ("ec", [], "AWS4-X509-ECDSA-SHA256"),
    ("rsa_pw", ["--tpm-key-password", TPM_PASSWORD], "AWS4-X509-RSA-SHA256"),
    ("p384", ["--no-tpm-key-password"], "AWS4-X509-ECDSA-SHA256"),
])
def test_tpm_keys(tpm_cp, swtpm, fake_ra, name, extra, algorithm):
    key = swtpm.keys[name]
    proc = tpm_cp("--certificate", key.cert_pem, "--private-key", key.path, *extra)
    assert_accepted(proc, fake_ra, key.leaf, algorithm)


def test_tpm_password_from_the_environment(tpm_cp, swtpm, fake_ra):
    key = swtpm.keys["rsa_pw"]
    proc = tpm_cp("--certificate", key.cert_pem, "--private-key", key.path,
                  env={"IAMRA_TPM_KEY_PASSWORD": TPM_PASSWORD})
    assert_accepted(proc, fake_ra, key.leaf, "AWS4-X509-RSA-SHA256")


@pytest.mark.parametrize("name", ["ec", "rsa_pw", "p384"])
@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_sign_string_in_the_tpm(iamra_bin, swtpm, tmp_path, name, digest):
    key = swtpm.keys[name]
    proc = run(iamra_bin, ["sign-string", "--private-key", key.path, "--certificate",
                           key.cert_pem, "--digest", digest, "--format", "text",
                           "--tpm-key-password", TPM_PASSWORD if key.password else ""],
               env=swtpm.env(), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    verify_sign_string(key.leaf.cert.public_key(), proc.stdout, digest)


def _silent_socket(path: pathlib.Path, garbage: bool, stop: threading.Event):
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(8)
    srv.settimeout(0.2)
    held = []

    def loop():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            held.append(c)
            if garbage:
                try:
                    c.sendall(os.urandom(1 << 16) * 16)
                except OSError:
                    pass
        for c in held:
            c.close()
        srv.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def test_tpm_failures_are_one_line_within_the_timeout(tpm_cp, swtpm, fake_ra, tmp_path):
    rsa_pw, ec_key, nosign = swtpm.keys["rsa_pw"], swtpm.keys["ec"], swtpm.keys["nosign"]
    silent, noisy = tmp_path / "silent.sock", tmp_path / "noisy.sock"
    stop = threading.Event()
    threads = [_silent_socket(silent, False, stop), _silent_socket(noisy, True, stop)]
    wrong = "not-the-password"
    try:
        cases = [
            (tpm_cp("--certificate", rsa_pw.cert_pem, "--private-key", rsa_pw.path,
                    "--tpm-key-password", wrong), ["wrong TPM key password"], 20),
            (tpm_cp("--certificate", rsa_pw.cert_pem, "--private-key", rsa_pw.path),
             ["has a password", "--tpm-key-password", "--no-tpm-key-password"], 20),
            (tpm_cp("--certificate", nosign.cert_pem, "--private-key", nosign.path),
             ["cannot sign", "sign attribute"], 20),
            (tpm_cp("--certificate", ec_key.cert_pem, "--private-key", ec_key.path,
                    env={"TPM_DEVICE": "/nonexistent/tpmrm0"}), ["no TPM at /nonexistent"], 20),
            (tpm_cp("--certificate", ec_key.cert_pem, "--private-key", ec_key.path,
                    timeout="2s", env={"TPM_DEVICE": str(silent)}),
             ["did not answer within --timeout"], 2),
            (tpm_cp("--certificate", ec_key.cert_pem, "--private-key", ec_key.path,
                    env={"TPM_DEVICE": str(noisy)}), ["not a TPM 2.0 response"], 20),
            (tpm_cp("--certificate", swtpm.keys["p384"].cert_pem, "--private-key", ec_key.path),
             ["does not match the private key"], 20),
        ]
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    for proc, needles, bound in cases:
        assert_error(proc, *needles, exit_code=EXIT_USAGE)
        assert proc.elapsed < bound + 3, f"{needles}: {proc.elapsed:.1f}s"
        assert wrong not in proc.stderr and TPM_PASSWORD not in proc.stderr, proc.stderr
    assert not fake_ra.requests, "no request is sent without a usable key"


def test_serve_with_a_tpm_key(iamra_bin, swtpm, fake_ra, tmp_path):
    key = swtpm.keys["rsa_pw"]
    proc, imds = serve_until_ready(iamra_bin, [*ra_flags(fake_ra), "--certificate", key.cert_pem,
                                               "--private-key", key.path],
                                   swtpm.env(IAMRA_TPM_KEY_PASSWORD=TPM_PASSWORD), tmp_path)
    try:
        creds = imds.credentials()
        assert creds["AccessKeyId"] == fake_ra.issued[-1]["accessKeyId"]
        assert fake_ra.requests[-1].verdict == "accepted"
    finally:
        terminate(proc)
    assert TPM_PASSWORD not in proc.stderr.read()
