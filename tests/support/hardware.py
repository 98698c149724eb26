"""pytest plugin: real hardware-key parts, no physical device (issue 18).

* ``softhsm`` (session scope): a SoftHSM2 token ``iamra`` (user PIN ``PIN``) in a temp folder
  (``SOFTHSM2_CONF``), with keys generated *in the token* (``pkcs11-tool --keypairgen``; the
  private halves never leave it) and their certificates, issued by the ``pki`` root from the
  public keys read back from the token, written next to them (same ``CKA_ID`` and label):
  ``ec`` (EC P-256, id 01), ``rsa`` (RSA-2048, id 02), ``aa`` (RSA-2048 with
  ``CKA_ALWAYS_AUTHENTICATE``, id 03: SoftHSM2 2.6 signs EC only with raw ``CKM_ECDSA``, which
  cannot take the per-signature PIN between ``C_SignInit`` and ``C_Sign`` through ``cryptoki``). A second token ``locked`` whose user PIN is locked
  (SoftHSM2 never locks a user PIN by itself: the fixture sets ``CKF_USER_PIN_LOCKED`` in the
  token's own file, which SoftHSM2 then reports, as a card that counted its tries would).
* ``swtpm`` (session scope): a software TPM 2.0 (``swtpm``) serving the TPM command protocol on
  a UNIX socket (``TPM_DEVICE``), started and stopped by PID, with TSS2 key files made by
  ``tpm2-openssl`` in that TPM and their certificates: ``ec`` (P-256, no password, under the
  owner hierarchy), ``rsa_pw`` (RSA-2048 with the password ``TPM_PASSWORD``), ``p384``
  (P-384 under the persistent parent ``0x81000001``), and ``nosign`` (an RSA decryption-only key
  made with ``tpm2_create``/``tpm2_encodeobject``, no sign attribute). Keys are made through a
  TCP twin of the same TPM state (the tools' TCTI), which is stopped before the UNIX-socket
  server starts.

Skipped with the reason when a tool is missing (``scripts/setup-hardware.sh`` installs them).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization

from support.pki import Issued, make_leaf, write_cert

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "pin-8642-iamra"
SO_PIN = "87654321"
TOKEN = "iamra"
TPM_PASSWORD = "tpm-s3cret-pw"
PERSISTENT_PARENT = "0x81000001"
CKF_USER_PIN_LOCKED = 0x00040000


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run scripts/setup-hardware.sh")


def _run(*args, env=None, input=None) -> bytes:
    proc = subprocess.run([str(a) for a in args], env=env, input=input, capture_output=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))}: exit {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')}")
    return proc.stdout


class _PublicOnly:
    """A stand-in private key for ``make_leaf``: only the public half is known (it lives in hardware)."""

    def __init__(self, public):
        self._public = public

    def public_key(self):
        return self._public


@dataclass
class TokenKey:
    name: str
    id_hex: str
    label: str
    leaf: Issued
    cert_pem: pathlib.Path
    always_authenticate: bool = False

    @property
    def serial(self) -> int:
        return self.leaf.serial

    @property
    def uri(self) -> str:
        """The certificate's URI (token, id and label: exactly one object)."""
        return f"pkcs11:token={TOKEN};id=%{self.id_hex};object={self.label};type=cert"

    @property
    def key_uri(self) -> str:
        return f"pkcs11:token={TOKEN};id=%{self.id_hex};type=private"


@dataclass
class SoftHsm:
    dir: pathlib.Path
    conf: pathlib.Path
    module: str
    keys: dict = field(default_factory=dict)

    def env(self, **extra) -> dict:
        return {"SOFTHSM2_CONF": str(self.conf), **extra}

    def tool(self, *args, token=TOKEN) -> bytes:
        return _run("pkcs11-tool", "--module", self.module, "--token-label", token, *args,
                    env={**os.environ, "SOFTHSM2_CONF": str(self.conf)})


def _token_dir(hsm: SoftHsm, label: str) -> pathlib.Path:
    for d in (hsm.dir / "tokens").iterdir():
        obj = d / "token.object"
        if obj.exists() and label.encode().ljust(32) in obj.read_bytes():
            return d
    raise RuntimeError(f"no SoftHSM2 folder for token {label}")


def _lock_user_pin(hsm: SoftHsm, label: str) -> None:
    """Sets CKF_USER_PIN_LOCKED in the token's flags (SoftHSM2 attribute CKA_OS_TOKENFLAGS)."""
    obj = _token_dir(hsm, label) / "token.object"
    data = bytearray(obj.read_bytes())
    marker = bytes.fromhex("000000008000534b" "0000000000000002" "00000000")
    at = data.find(marker)
    if at < 0:
        raise RuntimeError("CKA_OS_TOKENFLAGS not found in the SoftHSM2 token file")
    pos = at + len(marker)
    flags = int.from_bytes(data[pos:pos + 4], "big") | CKF_USER_PIN_LOCKED
    data[pos:pos + 4] = flags.to_bytes(4, "big")
    obj.write_bytes(bytes(data))


def _token_key(hsm: SoftHsm, pki, name: str, key_type: str, id_hex: str,
               always_auth: bool = False) -> TokenKey:
    label = f"iamra-{name}"
    args = ["--login", "--pin", PIN, "--keypairgen", "--key-type", key_type, "--id", id_hex,
            "--label", label]
    if always_auth:
        args.append("--always-auth")
    hsm.tool(*args)
    pub_der = hsm.dir / f"{name}.pub.der"
    hsm.tool("--read-object", "--type", "pubkey", "--id", id_hex, "-o", pub_der)
    public = serialization.load_der_public_key(pub_der.read_bytes())
    leaf = make_leaf(pki.root, private_key=_PublicOnly(public), cn=f"{name}.token.test.invalid")
    cert_der = hsm.dir / f"{name}.cert.der"
    cert_der.write_bytes(leaf.cert_der)
    hsm.tool("--login", "--pin", PIN, "--write-object", cert_der, "--type", "cert",
             "--id", id_hex, "--label", label)
    return TokenKey(name, id_hex, label, leaf, write_cert(hsm.dir / f"{name}.cert.pem", leaf),
                    always_auth)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory, pki) -> SoftHsm:
    _need("softhsm2-util", "pkcs11-tool")
    if not os.path.exists(SOFTHSM_MODULE):
        pytest.skip(f"{SOFTHSM_MODULE} missing: run scripts/setup-hardware.sh")
    return make_softhsm(tmp_path_factory.mktemp("softhsm"), pki)


def make_softhsm(d: pathlib.Path, pki) -> SoftHsm:
    """The token of the ``softhsm`` fixture, in ``d`` (also used by bench/hardware.py)."""
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    hsm = SoftHsm(d, conf, SOFTHSM_MODULE)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in (TOKEN, "locked"):
        _run("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
             "--so-pin", SO_PIN, env=env)
    hsm.keys["ec"] = _token_key(hsm, pki, "ec", "EC:prime256v1", "01")
    hsm.keys["rsa"] = _token_key(hsm, pki, "rsa", "rsa:2048", "02")
    hsm.keys["aa"] = _token_key(hsm, pki, "aa", "rsa:2048", "03", always_auth=True)
    _lock_user_pin(hsm, "locked")
    return hsm


# ---- swtpm -----------------------------------------------------------------------------------

@dataclass
class TpmKey:
    name: str
    path: pathlib.Path
    leaf: Issued
    cert_pem: pathlib.Path
    password: str | None = None

    @property
    def serial(self) -> int:
        return self.leaf.serial


@dataclass
class Swtpm:
    dir: pathlib.Path
    socket: pathlib.Path
    pid: int
    keys: dict = field(default_factory=dict)

    def env(self, **extra) -> dict:
        return {"TPM_DEVICE": str(self.socket), **extra}


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as b:
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def _start_swtpm(d: pathlib.Path, server: str, ctrl: str, pidfile: pathlib.Path) -> int:
    pidfile.unlink(missing_ok=True)
    _run("swtpm", "socket", "--tpm2", "--tpmstate", f"dir={d / 'state'}", "--server", server,
         "--ctrl", ctrl, "--flags", "not-need-init,startup-clear", "-d", "--pid",
         f"file={pidfile}")
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            return int(pidfile.read_text())
        time.sleep(0.05)
    raise RuntimeError("swtpm did not start")


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _tpm_key(d: pathlib.Path, pki, tcti_env: dict, name: str, *pkeyopts: str,
             algorithm: str, password: str | None = None) -> TpmKey:
    path = d / f"{name}.tss2.pem"
    opts = [x for o in pkeyopts for x in ("-pkeyopt", o)]
    if password:
        opts += ["-pkeyopt", f"user-auth:{password}"]
    _run("openssl", "genpkey", "-provider", "tpm2", "-provider", "default", "-algorithm",
         algorithm, *opts, "-out", path, env=tcti_env)
    _run("tpm2_flushcontext", "-t", env=tcti_env)
    pub_args = ["openssl", "pkey", "-provider", "tpm2", "-provider", "default", "-in", path,
                "-pubout"]
    if password:
        pub_args += ["-passin", f"pass:{password}"]
    public = serialization.load_pem_public_key(_run(*pub_args, env=tcti_env))
    _run("tpm2_flushcontext", "-t", env=tcti_env)
    leaf = make_leaf(pki.root, private_key=_PublicOnly(public), cn=f"{name}.tpm.test.invalid")
    return TpmKey(name, path, leaf, write_cert(d / f"{name}.cert.pem", leaf), password)


def _nosign_key(d: pathlib.Path, pki, tcti_env: dict) -> TpmKey:
    """An RSA decryption-only key (no sign attribute) under the persistent parent."""
    pub, priv, path = d / "nosign.pub", d / "nosign.priv", d / "nosign.tss2.pem"
    _run("tpm2_create", "-C", PERSISTENT_PARENT, "-G", "rsa2048", "-a",
         "decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth", "-u", pub, "-r", priv,
         env=tcti_env)
    _run("tpm2_flushcontext", "-t", env=tcti_env)
    _run("tpm2_encodeobject", "-C", PERSISTENT_PARENT, "-u", pub, "-r", priv, "-o", path,
         env=tcti_env)
    # Any certificate will do: the key is refused before the certificate matters.
    leaf = make_leaf(pki.root, key="rsa2048", cn="nosign.tpm.test.invalid")
    return TpmKey("nosign", path, leaf, write_cert(d / "nosign.cert.pem", leaf))


@pytest.fixture(scope="session")
def swtpm(tmp_path_factory, pki):
    _need("swtpm", "tpm2_createprimary", "tpm2_evictcontrol", "tpm2_flushcontext",
          "tpm2_create", "tpm2_encodeobject", "tpm2_dictionarylockout", "openssl")
    if not list(pathlib.Path("/usr/lib").glob("*/ossl-modules/tpm2.so")):
        pytest.skip("tpm2-openssl not installed: run scripts/setup-hardware.sh")
    tpm = start_swtpm(tmp_path_factory.mktemp("swtpm"), pki)
    try:
        yield tpm
    finally:
        stop_swtpm(tpm)


def stop_swtpm(tpm: Swtpm) -> None:
    _stop(tpm.pid)


def start_swtpm(d: pathlib.Path, pki) -> Swtpm:
    """The TPM of the ``swtpm`` fixture, in ``d``, running (stop it with ``stop_swtpm``)."""
    (d / "state").mkdir()
    port = _free_port_pair()
    tcp_pid = _start_swtpm(d, f"type=tcp,port={port}", f"type=tcp,port={port + 1}",
                           d / "tcp.pid")
    tcti = f"swtpm:host=127.0.0.1,port={port}"
    tcti_env = {**os.environ, "TPM2TOOLS_TCTI": tcti, "TPM2OPENSSL_TCTI": tcti}
    keys = {}
    try:
        # Wrong-password tests must not lock the TPM out.
        _run("tpm2_dictionarylockout", "--setup-parameters", "--max-tries=1000",
             "--recovery-time=1", "--clear-lockout", env=tcti_env)
        _run("tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", d / "primary.ctx", "-Q",
             env=tcti_env)
        _run("tpm2_evictcontrol", "-C", "o", "-c", d / "primary.ctx", PERSISTENT_PARENT,
             env=tcti_env)
        _run("tpm2_flushcontext", "-t", env=tcti_env)
        keys["ec"] = _tpm_key(d, pki, tcti_env, "ec", "group:P-256", algorithm="EC")
        keys["rsa_pw"] = _tpm_key(d, pki, tcti_env, "rsa_pw", "bits:2048", algorithm="RSA",
                                  password=TPM_PASSWORD)
        keys["p384"] = _tpm_key(d, pki, tcti_env, "p384", "group:P-384",
                                f"parent:{PERSISTENT_PARENT}", algorithm="EC")
        keys["nosign"] = _nosign_key(d, pki, tcti_env)
    finally:
        _stop(tcp_pid)
    sock = d / "tpm.sock"
    pid = _start_swtpm(d, f"type=unixio,path={sock}", f"type=unixio,path={d / 'ctrl.sock'}",
                       d / "unix.pid")
    return Swtpm(d, sock, pid, keys)
