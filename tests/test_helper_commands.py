"""``aws_signing_helper``'s command lines, run unchanged against this binary.

Contract (issue 11; the helper's README and ``cmd/*.go``, ``docs/rolesanywhere-protocol.md``
§6): swapping the binary is the whole migration. Each documented command line below is the
helper's text with only the program name (and the example's placeholders) replaced; the fake
Roles Anywhere endpoint is reached through ``AWS_ENDPOINT_URL_ROLESANYWHERE`` so that no flag is
added. What reads the output is what reads the helper's: botocore's IMDS provider for
``serve``, botocore's shared-credentials provider for ``update``, ``cryptography`` for
``sign-string``.

* ``version``: what ``--version`` prints.
* ``sign-string``: signs ``"AWS Roles Anywhere Credential Helper Signing Test" || "1" ||
  SHA256("IAM RA" || public key)`` (never stdin) with ``--digest`` SHA256|SHA384|SHA512; prints
  the hex signature as a JSON string (default), bare (``text``) or raw (``bin``), no newline.
* ``read-certificate-data --certificate F``: ``{"keyType","certificateData","serialNumber",
  "supportedAlgorithms"}`` compact, in that order, serial in decimal.
* ``update [--profile P] --once``: the profile written, botocore reads it; without ``--once`` it
  keeps it fresh.
* ``serve [--port N] [--hop-limit H]``: IMDSv2 on 127.0.0.1 (port 9911 by default).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shlex
import subprocess
import time

import botocore.session
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from conftest import clean_env
from support.cli import EXIT_USAGE, assert_error, credential_process_json
from support.fake_ra import PROFILE_ARN, ROLE_ARN, TA_ARN
from support.openbao import free_port, terminate

HELPER = "/path/to/aws_signing_helper"

# ---- the helper's documented command lines (README and its pod specs), verbatim -------------

# README, "Example Usage" (after generate-credential-process-data.sh).
README_CREDENTIAL_PROCESS = """
/path/to/aws_signing_helper credential-process \\
    --certificate credential-process-data/client-cert.pem \\
    --private-key credential-process-data/client-key.pem \\
    --role-arn <your-role-arn> \\
    --trust-anchor-arn ${TA_ARN} \\
    --profile-arn ${PROFILE_ARN}
"""
# docker_image_resources/tests/pod_configurations/update.yaml and serve.yaml (args).
POD_UPDATE = ["update", "--certificate", "/certs/certificate.pem", "--private-key",
              "/certs/private_key.pem", "--trust-anchor-arn", "$TRUST_ANCHOR_ARN",
              "--profile-arn", "$PROFILE_ARN", "--role-arn", "$ROLE_ARN", "--debug"]
POD_SERVE = ["serve", "--certificate", "/certs/certificate.pem", "--private-key",
             "/certs/private_key.pem", "--trust-anchor-arn", "$TRUST_ANCHOR_ARN",
             "--profile-arn", "$PROFILE_ARN", "--role-arn", "$ROLE_ARN", "--debug"]


def fixed_message(public_key) -> bytes:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        raw = public_key.public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint)
    else:
        raw = public_key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.PKCS1)
    return (b"AWS Roles Anywhere Credential Helper Signing Test" + b"1"
            + hashlib.sha256(b"IAM RA" + raw).digest())


def verify(public_key, signature: bytes, digest: str) -> None:
    h = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}[digest]
    msg = fixed_message(public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, msg, padding.PKCS1v15(), h)
    else:
        public_key.verify(signature, msg, ec.ECDSA(h))


@pytest.fixture
def workdir(tmp_path, pki):
    """A folder laid out as the examples expect: credential-process-data/ and certs/."""
    leaf = pki.leaf("p256")
    data = tmp_path / "credential-process-data"
    data.mkdir()
    (data / "client-cert.pem").write_bytes(leaf.cert_pem.read_bytes())
    (data / "client-key.pem").write_bytes(leaf.key().read_bytes())
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "certificate.pem").write_bytes(leaf.cert_pem.read_bytes())
    (certs / "private_key.pem").write_bytes(leaf.key().read_bytes())
    (tmp_path / "home").mkdir(exist_ok=True)
    return tmp_path


def substitute(args: list[str], iamra_bin, workdir: pathlib.Path) -> list[str]:
    """Only the program name, the example's placeholders and /certs (the pod's mount)."""
    values = {"<your-role-arn>": ROLE_ARN, "${TA_ARN}": TA_ARN, "${PROFILE_ARN}": PROFILE_ARN,
              "$TRUST_ANCHOR_ARN": TA_ARN, "$PROFILE_ARN": PROFILE_ARN, "$ROLE_ARN": ROLE_ARN}
    out = []
    for a in args:
        a = values.get(a, a)
        if a.startswith("/certs/"):
            a = str(workdir / a[1:])
        out.append(str(iamra_bin) if a == HELPER else a)
    return out


def run_in(workdir, cmd: list[str], env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=workdir, env=clean_env(env, home=workdir / "home"),
                          capture_output=True, timeout=60, **kw)


def ra_env(fake_ra, **extra) -> dict:
    return {"AWS_ENDPOINT_URL_ROLESANYWHERE": fake_ra.url, **extra}


# ---- version --------------------------------------------------------------------------------

def test_version_is_what_dash_dash_version_prints(run_bin):
    v = run_bin(["version"], check=True)
    assert v.stdout == run_bin(["--version"], check=True).stdout
    assert v.stdout.startswith("iamra-bootstrap ") and v.stdout.endswith("\n")
    assert v.stderr == ""


# ---- sign-string ----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["rsa2048", "p256", "p384"])
@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_sign_string_signs_the_fixed_string(run_bin, iamra_bin, pki, key, digest):
    leaf = pki.leaf(key)
    public = leaf.leaf.key.public_key()
    base = ["sign-string", "--private-key", leaf.key(), "--digest", digest]
    # Default: json, a JSON string of lower-case hex, no newline; stdin is never read.
    out = run_bin(base, input="not this", check=True).stdout
    sig_hex = json.loads(out)
    assert out == json.dumps(sig_hex) and sig_hex == sig_hex.lower()
    verify(public, bytes.fromhex(sig_hex), digest)
    text = run_bin([*base, "--format", "text"], check=True).stdout
    assert "\n" not in text
    verify(public, bytes.fromhex(text), digest)
    proc = subprocess.run([str(iamra_bin), *map(str, base),
                           "--format", "bin", "--certificate", str(leaf.cert_pem)],
                          capture_output=True, env=clean_env(), timeout=30)
    assert proc.returncode == 0, proc.stderr
    verify(public, proc.stdout, digest)
    if key == "rsa2048":   # PKCS#1 v1.5 is deterministic
        assert bytes.fromhex(text) == proc.stdout


def test_sign_string_key_formats_and_errors(run_bin, pki, tmp_path):
    leaf = pki.leaf("p256")
    for fmt in ("pkcs8", "sec1"):
        sig = json.loads(run_bin(["sign-string", "--private-key", leaf.key(fmt)], check=True).stdout)
        verify(leaf.leaf.key.public_key(), bytes.fromhex(sig), "SHA256")
    other = pki.leaf("rsa2048")
    assert_error(run_bin(["sign-string", "--private-key", leaf.key(), "--certificate",
                          other.cert_pem]), "does not belong", exit_code=EXIT_USAGE)
    assert_error(run_bin(["sign-string", "--private-key", leaf.key(), "--digest", "MD5"]),
                 "--digest", exit_code=EXIT_USAGE)
    assert_error(run_bin(["sign-string"]), "--private-key", exit_code=EXIT_USAGE)
    assert_error(run_bin(["sign-string", "--private-key", tmp_path / "nope"]), "nope",
                 exit_code=EXIT_USAGE)


# ---- read-certificate-data ------------------------------------------------------------------

@pytest.mark.parametrize("key,key_type", [("rsa2048", "RSA"), ("p256", "EC"), ("p384", "EC")])
def test_read_certificate_data(run_bin, pki, key, key_type):
    leaf = pki.leaf(key)
    cert = x509.load_pem_x509_certificate(leaf.cert_pem.read_bytes())
    import base64
    expected = json.dumps({
        "keyType": key_type,
        "certificateData": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
        "serialNumber": str(cert.serial_number),
        "supportedAlgorithms": [f"{key_type}SHA256", f"{key_type}SHA384", f"{key_type}SHA512"],
    }, separators=(",", ":"))
    for path in (leaf.cert_pem, leaf.cert_der, leaf.bundle_pem):
        proc = run_bin(["read-certificate-data", "--certificate", path], check=True)
        assert proc.stdout == expected
        assert proc.stderr == ""


def test_read_certificate_data_errors(run_bin, tmp_path):
    assert_error(run_bin(["read-certificate-data"]), "--certificate", exit_code=EXIT_USAGE)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    assert_error(run_bin(["read-certificate-data", "--certificate", bad]), "bad.pem",
                 exit_code=EXIT_USAGE)


# ---- credential-process, update ------------------------------------------------------------

def test_readme_credential_process_example(iamra_bin, workdir, fake_ra):
    # As a shell reads it: a backslash-newline joins the lines.
    cmd = substitute(shlex.split(README_CREDENTIAL_PROCESS.replace("\\\n", " ")), iamra_bin, workdir)
    proc = run_in(workdir, cmd, env=ra_env(fake_ra), text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == credential_process_json(fake_ra.issued[-1])


def botocore_file_credentials(credentials_file: pathlib.Path, profile: str, monkeypatch):
    for k in list(os.environ):
        if k.startswith(("AWS_", "BOTO")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(credentials_file.parent / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    creds = botocore.session.Session(profile=profile).get_credentials()
    assert creds is not None and creds.method == "shared-credentials-file"
    return creds.get_frozen_credentials()


@pytest.mark.parametrize("profile", [None, "dev"])
def test_update_once_is_read_by_botocore(iamra_bin, workdir, fake_ra, monkeypatch, profile):
    cmd = substitute([HELPER, *POD_UPDATE, "--once"], iamra_bin, workdir)
    if profile:
        cmd += ["--profile", profile]
    proc = run_in(workdir, cmd, env=ra_env(fake_ra), text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    path = workdir / "home" / ".aws" / "credentials"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    frozen = botocore_file_credentials(path, profile or "default", monkeypatch)
    issued = fake_ra.issued[-1]
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        issued["accessKeyId"], issued["secretAccessKey"], issued["sessionToken"])


def test_update_keeps_the_profile_fresh(iamra_bin, workdir, fake_ra, monkeypatch):
    """Without --once: a new session is written before the previous one expires."""
    fake_ra.set_lifetime(20)   # refresh after ~14 s (70 %), never sooner than 5 s
    cmd = substitute([HELPER, *POD_UPDATE], iamra_bin, workdir)
    proc = subprocess.Popen(cmd, cwd=workdir, env=clean_env(ra_env(fake_ra), home=workdir / "home"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 45
        while fake_ra.count < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert fake_ra.count >= 2, f"one session only; exit {proc.poll()}"
        time.sleep(0.5)
        frozen = botocore_file_credentials(workdir / "home/.aws/credentials", "default", monkeypatch)
        assert frozen.access_key == fake_ra.issued[-1]["accessKeyId"]
    finally:
        terminate(proc)
    log = proc.stderr.read()
    assert "credentials file updated" in log
    for issued in fake_ra.issued:   # --debug logs steps, never secrets
        assert issued["secretAccessKey"] not in log and issued["sessionToken"] not in log


# ---- serve --------------------------------------------------------------------------------

class Served:
    def __init__(self, proc: subprocess.Popen, base: str):
        self.proc, self.base = proc, base

    def wait_for_credentials(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve never had credentials")


@pytest.fixture
def serve(iamra_bin, workdir, fake_ra):
    started = []

    def start(args: list[str], port: int, env=None) -> Served:
        cmd = substitute([HELPER, *args], iamra_bin, workdir)
        proc = subprocess.Popen(cmd, cwd=workdir,
                                env=clean_env({**ra_env(fake_ra), **(env or {})}, home=workdir / "home"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        s = Served(proc, f"http://127.0.0.1:{port}")
        s.wait_for_credentials()
        return s

    yield start
    for p in started:
        terminate(p)


def botocore_imds(base: str, monkeypatch):
    for k in list(os.environ):
        if k.startswith(("AWS_", "BOTO")) or k.lower().endswith("_proxy"):
            monkeypatch.delenv(k)
    missing = pathlib.Path("/nonexistent-iamra")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base)
    creds = botocore.session.Session().get_credentials()
    assert creds is not None and creds.method == "iam-role"
    return creds.get_frozen_credentials()


def test_serve_port_and_hop_limit_read_by_botocore_imds(serve, fake_ra, monkeypatch):
    port = free_port()
    s = serve([*POD_SERVE, "--port", str(port), "--hop-limit", "1"], port)
    frozen = botocore_imds(s.base, monkeypatch)
    issued = fake_ra.issued[-1]
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        issued["accessKeyId"], issued["secretAccessKey"], issued["sessionToken"])


def test_pod_spec_serve_serves_imds_on_the_default_address(serve, fake_ra, monkeypatch):
    """The helper's pod spec gives no --port: IMDSv2 on 127.0.0.1:9911. The command line stays
    as written; the address comes from IAMRA_LISTEN only so that parallel runs do not collide."""
    port = free_port()
    s = serve(POD_SERVE, port, env={"IAMRA_LISTEN": f"127.0.0.1:{port}"})
    frozen = botocore_imds(s.base, monkeypatch)
    assert frozen.access_key == fake_ra.issued[-1]["accessKeyId"]


def serving_addresses(proc: subprocess.Popen, timeout: float = 30) -> dict[str, str]:
    """The addresses the ``serving`` log line names (read from stderr as it is written)."""
    import queue
    import re
    import threading
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stderr], daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if re.search(r"\bserving\b", line):
            return dict(re.findall(r"\b(listen|health_listen)=(?:Some\()?([\d.]+:\d+)", line))
    raise AssertionError(f"no serving line: {''.join(seen)[-2000:]}")


@pytest.mark.parametrize("flags", [["--port", "0"],
                                   ["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"]])
def test_port_0_logs_the_port_it_got(iamra_bin, workdir, fake_ra, monkeypatch, flags):
    """Port 0 binds a port the kernel picks; the log names that port (not :0), and it serves
    there. A GET where the IMDS token takes a PUT is 405 naming PUT, not 401."""
    cmd = substitute([HELPER, *POD_SERVE, *flags], iamra_bin, workdir)
    proc = subprocess.Popen(cmd, cwd=workdir,
                            env=clean_env(ra_env(fake_ra), home=workdir / "home"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        addrs = serving_addresses(proc)
        assert set(addrs) == ({"listen", "health_listen"} if "--health-listen" in flags
                              else {"listen"}), addrs
        for addr in addrs.values():
            host, port = addr.rsplit(":", 1)
            assert host == "127.0.0.1" and int(port) > 0, addrs
        assert addrs.get("listen") != addrs.get("health_listen")
        s = Served(proc, f"http://{addrs['listen']}")
        s.wait_for_credentials()
        if "health_listen" in addrs:
            assert requests.get(f"http://{addrs['health_listen']}/readyz", timeout=5).status_code == 200
        r = requests.get(f"{s.base}/latest/api/token", timeout=5)
        assert (r.status_code, r.headers.get("allow")) == (405, "PUT"), (r.status_code, r.text)
        frozen = botocore_imds(s.base, monkeypatch)
        assert frozen.access_key == fake_ra.issued[-1]["accessKeyId"]
    finally:
        assert terminate(proc) == 0


def test_serve_flag_errors(run_bin, pki):
    leaf = pki.leaf("p256")
    base = ["serve", "--certificate", leaf.cert_pem, "--private-key", leaf.key(),
            "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN]
    assert_error(run_bin([*base, "--hop-limit", "0"]), "--hop-limit", exit_code=EXIT_USAGE)
    assert_error(run_bin([*base, "--hop-limit", "256"]), "--hop-limit", exit_code=EXIT_USAGE)
    assert_error(run_bin([*base, "--port", "9911", "--listen", "127.0.0.1:9912"]), "--port",
                 exit_code=EXIT_USAGE)
    assert_error(run_bin(["serve", "--private-key", leaf.key(), "--trust-anchor-arn", TA_ARN,
                          "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN]),
                 "--certificate", exit_code=EXIT_USAGE)


@pytest.mark.parametrize("key,via,cert,key_fmt", [
    ("rsa2048", False, "der", "pkcs1"),
    ("p384", True, "bundle", "sec1"),
    ("p256", True, "pem", "pkcs8"),   # --intermediates
])
def test_update_once_takes_every_file_format(run_bin, pki, fake_ra, tmp_path, key, via, cert,
                                            key_fmt):
    """serve and update read the files with credential-process's loader: DER or PEM leaf, a
    PEM bundle's further certificates as intermediates, PKCS#8, PKCS#1 or SEC1 keys."""
    leaf = pki.leaf(key, via_intermediate=via)
    path = {"pem": leaf.cert_pem, "der": leaf.cert_der, "bundle": leaf.bundle_pem}[cert]
    args = ["update", "--once", "--certificate", path, "--private-key", leaf.key(key_fmt),
            "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN,
            "--credentials-file", tmp_path / "credentials"]
    if cert == "pem" and leaf.chain:
        args += ["--intermediates", leaf.chain_pem]
    proc = run_bin(args, env=ra_env(fake_ra))
    assert proc.returncode == 0, proc.stderr
    sent = fake_ra.requests[-1]
    assert sent.verdict == "accepted" and sent.serial == str(leaf.serial)
    assert ("x-amz-x509-chain" in sent.headers) == bool(leaf.chain)
    assert fake_ra.issued[-1]["accessKeyId"] in (tmp_path / "credentials").read_text()


@pytest.mark.parametrize("digest", ["SHA256", "SHA512"])
@pytest.mark.parametrize("key", ["rsa2048", "p256"])
def test_sign_string_with_an_encrypted_key(run_bin, pki, tmp_path, key, digest):
    from support.pki import encrypted_pkcs8
    leaf = pki.leaf(key)
    enc = tmp_path / "key.enc.pem"
    enc.write_bytes(encrypted_pkcs8(leaf.leaf.key, "s3cret"))
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    out = run_bin(["sign-string", "--private-key", enc, "--pkcs8-password-file", pw,
                   "--digest", digest], check=True).stdout
    verify(leaf.leaf.key.public_key(), bytes.fromhex(json.loads(out)), digest)
    assert_error(run_bin(["sign-string", "--private-key", enc, "--digest", digest]),
                 exit_code=EXIT_USAGE)


def test_sign_string_ml_dsa_signs_the_bare_message(run_bin, pki):
    """ML-DSA: the helper appends no public-key hash and signs the message itself."""
    leaf = pki.leaf("mldsa65")
    out = run_bin(["sign-string", "--private-key", leaf.key(), "--format", "text",
                   "--digest", "SHA384"], check=True).stdout
    leaf.leaf.key.public_key().verify(bytes.fromhex(out),
                                      b"AWS Roles Anywhere Credential Helper Signing Test1")


def test_update_once_from_a_pkcs12_file(run_bin, pki, fake_ra, tmp_path):
    from support.pki import pkcs12
    leaf = pki.leaf("p256", via_intermediate=True)
    p12 = tmp_path / "id.p12"
    p12.write_bytes(pkcs12(leaf.leaf, leaf.chain, "pw"))
    proc = run_bin(["update", "--once", "--certificate", p12, "--pkcs8-password", "pw",
                    "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN,
                    "--role-arn", ROLE_ARN, "--credentials-file", tmp_path / "credentials"],
                   env=ra_env(fake_ra))
    assert proc.returncode == 0, proc.stderr
    assert fake_ra.requests[-1].serial == str(leaf.serial)
    assert fake_ra.issued[-1]["accessKeyId"] in (tmp_path / "credentials").read_text()
