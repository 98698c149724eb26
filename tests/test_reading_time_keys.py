"""Issue 17's reading, time and keys doors, and the messages found with the helper's material.

Contract under test:

* **Reading.** Every file goes through ``src/bounded.rs``: ``read-certificate-data`` and
  ``sign-string`` too. ``/dev/zero`` and a 50 MB file end at once at the cap, a FIFO with no
  writer at ``--timeout``; peak RSS stays under 64 MiB (the fault matrix's ``run_measured``).
* **Time.** Every command takes ``--timeout`` and it bounds key derivation: an encrypted key at
  the PBKDF2 cap (10,000,000 iterations, HMAC-SHA512 or -SHA256) ends the run at the deadline
  with a line naming the key file and ``--timeout``, not the network. A scrypt key at the cap
  (32 MiB) signs within 64 MiB of RSS; one above it, and a PKCS#12 file above the iteration cap,
  are refused by name before any work.
* **Keys.** A P-256 SEC1 key whose scalar is zero, the group order n or above it, or whose
  stored public key is not on the curve, is refused in words naming what is wrong (never
  loaded as another curve, never "unsupported key type" with P-256's own OID).
* **Messages.** A PKCS#12 file passed as both ``--certificate`` and ``--private-key`` says so
  and to drop ``--private-key``; a leaf with an empty subject is named by its file and position;
  a truncated certificate is described in words, not parser names; a refused ``pkcs11:`` URI
  never shows its ``pin-value``; a certificate path that does not exist fails at once.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.cli import EXIT_USAGE, assert_error
from support.fake_ra import PROFILE_ARN, ROLE_ARN, TA_ARN
from support.pki import _der_int, _der_oid, _seq, _tlv, pem_block, pkcs12
from test_fault_matrix import (BOUND, MAX_RSS_KIB, TIMEOUT, cp, faulty,  # noqa: F401 (fixtures)
                               home, run_measured)

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_OID = "1.2.840.10045.3.1.7"
PASSWORD = "correct horse battery staple"
JARGON = ("NomError", "Eof", "UnexpectedTag", "Incomplete", "Tag {")


@pytest.fixture
def offline(iamra_bin, home, tmp_path):
    """``offline(command, *args)``: an offline command with ``--timeout 3s``, measured."""

    def go(command, *args):
        return run_measured(iamra_bin, [command, *args, "--timeout", f"{TIMEOUT}s"], {}, home)

    return go


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.pem"
    with open(path, "wb") as f:
        f.truncate(50 * 1000 * 1000)
    return path


def within(r, fast: bool):
    """Exit 2 in bounds; ``fast``: ended at once (a cap), else near the deadline."""
    r.within_bounds()
    if fast:
        assert r.elapsed < 1.5, f"{r.elapsed:.2f} s"
    else:
        assert r.elapsed >= TIMEOUT - 0.5, f"{r.elapsed:.2f} s: ended before the deadline"
    return r


# ---- reading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["dev-zero", "fifo", "50MB"])
@pytest.mark.parametrize("command", ["read-certificate-data", "sign-string-certificate",
                                     "sign-string-key"])
def test_every_command_reads_through_the_bounded_reader(offline, pki, fifo, big_file, source,
                                                        command):
    path = {"dev-zero": "/dev/zero", "fifo": fifo, "50MB": big_file}[source]
    leaf = pki.leaf("p256")
    args = {
        "read-certificate-data": ["read-certificate-data", "--certificate", path],
        "sign-string-certificate": ["sign-string", "--private-key", leaf.key(),
                                    "--certificate", path],
        "sign-string-key": ["sign-string", "--private-key", path],
    }[command]
    r = within(offline(*args), fast=source != "fifo")
    needles = [str(path)] + (["larger than"] if source != "fifo" else ["within"])
    assert_error(r, *needles, exit_code=EXIT_USAGE)


def test_offline_commands_take_timeout(iamra_bin, run_bin):
    for command in ("read-certificate-data", "sign-string"):
        out = run_bin([command, "--help"], check=True).stdout
        assert "--timeout <DURATION>" in out, out


# ---- time: key derivation ends at the deadline ----------------------------------------------

PRF = {"sha512": "1.2.840.113549.2.11", "sha256": "1.2.840.113549.2.9"}


def pbkdf2_key(iterations: int, prf: str) -> bytes:
    """An ``ENCRYPTED PRIVATE KEY`` (PBES2, PBKDF2 with ``prf``, AES-256-CBC) whose key
    derivation costs ``iterations``; its ciphertext is random, so nothing but the derivation is
    computed before the password is found wrong (building it costs nothing)."""
    pbkdf2 = _seq(_der_oid("1.2.840.113549.1.5.12"),
                  _seq(_tlv(0x04, os.urandom(16)), _der_int(iterations),
                       _seq(_der_oid(PRF[prf]), b"\x05\x00")))
    aes = _seq(_der_oid("2.16.840.1.101.3.4.1.42"), _tlv(0x04, os.urandom(16)))
    alg = _seq(_der_oid("1.2.840.113549.1.5.13"), _seq(pbkdf2, aes))
    return pem_block("ENCRYPTED PRIVATE KEY", _seq(alg, _tlv(0x04, os.urandom(48))))


@pytest.mark.parametrize("prf", ["sha512", "sha256"])
def test_a_key_derivation_at_the_cap_ends_at_the_deadline(offline, cp, tmp_path, prf):
    """10,000,000 PBKDF2 iterations with HMAC-SHA512 outlive a 3 s deadline on any machine here
    (28 s before this door): the run ends at the deadline, naming the key file and --timeout.
    With HMAC-SHA256 the same count takes 1.2 s on an idle CPU with SHA instructions and 4.8 s
    on a loaded one: it either ends at the deadline the same way, or the derivation finishes
    first and the (random) ciphertext is found not to decrypt. Either way: within the deadline,
    exit 2, the key file named, never the network."""
    key = tmp_path / f"pbkdf2-{prf}.p8.pem"
    key.write_bytes(pbkdf2_key(10_000_000, prf))
    for r in (offline("sign-string", "--private-key", key, "--pkcs8-password", PASSWORD),
              cp("--pkcs8-password", PASSWORD, key=key, cache=False)):
        r.within_bounds()
        line = assert_error(r, str(key), exit_code=EXIT_USAGE)
        assert "Roles Anywhere" not in line and "network" not in line, line
        if prf == "sha512" or r.elapsed >= TIMEOUT - 0.5:
            within(r, fast=False)
            assert "--timeout" in line, line
        else:
            assert "the password does not decrypt it" in line, line


def scrypt_key(key, n: int, r: int = 8, p: int = 1) -> bytes:
    """An ``ENCRYPTED PRIVATE KEY`` (PBES2, scrypt N/r/p, AES-256-CBC) of ``key``, made with
    hashlib's scrypt (``openssl pkcs8 -scrypt`` stops below 32 MiB)."""
    import hashlib

    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    salt, iv = os.urandom(16), os.urandom(16)
    dk = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                        maxmem=256 * r * n + (1 << 20))
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    padder = sym_padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(dk), modes.CBC(iv)).encryptor()
    data = enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()
    kdf = _seq(_der_oid("1.3.6.1.4.1.11591.4.11"),
               _seq(_tlv(0x04, salt), _der_int(n), _der_int(r), _der_int(p), _der_int(32)))
    aes = _seq(_der_oid("2.16.840.1.101.3.4.1.42"), _tlv(0x04, iv))
    alg = _seq(_der_oid("1.2.840.113549.1.5.13"), _seq(kdf, aes))
    return pem_block("ENCRYPTED PRIVATE KEY", _seq(alg, _tlv(0x04, data)))


def test_scrypt_at_the_cap_stays_under_64_mib_and_above_it_is_refused(offline, pki, tmp_path):
    leaf = pki.leaf("p256")
    at_cap = tmp_path / "scrypt-32MiB.p8.pem"
    at_cap.write_bytes(scrypt_key(leaf.leaf.key, 1 << 15))   # 128 * 8 * 2^15 = 32 MiB
    r = offline("sign-string", "--private-key", at_cap, "--pkcs8-password", PASSWORD)
    r.within_bounds()
    assert r.returncode == 0, r.stderr
    assert r.maxrss_kib < MAX_RSS_KIB
    over = tmp_path / "scrypt-64MiB.p8.pem"
    over.write_bytes(scrypt_key(leaf.leaf.key, 1 << 16))
    r = within(offline("sign-string", "--private-key", over, "--pkcs8-password", PASSWORD),
               fast=True)
    assert_error(r, str(over), "scrypt", "64 MiB", "at most 32 MiB", exit_code=EXIT_USAGE)


def test_a_pkcs12_over_the_iteration_cap_says_so(iamra_bin, home, pki, tmp_path):
    files = pki.leaf("p256")
    p12 = tmp_path / "slow.p12"
    p12.write_bytes(subprocess.run(
        ["openssl", "pkcs12", "-export", "-inkey", files.key(), "-in", files.cert_pem,
         "-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256",
         "-iter", "1000001", "-passout", "pass:"],
        capture_output=True, check=True, stdin=subprocess.DEVNULL).stdout)
    r = run_measured(iamra_bin, [
        "credential-process", "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN,
        "--role-arn", ROLE_ARN, "--endpoint", "https://127.0.0.1:9", "--no-cache",
        "--certificate", p12, "--timeout", f"{TIMEOUT}s"], {}, home)
    within(r, fast=True)
    assert_error(r, str(p12), "1000001 iterations", "at most 1000000", exit_code=EXIT_USAGE)


# ---- keys: full validation, in words ------------------------------------------------------

def sec1_p256(scalar: int, public: bytes | None = None) -> bytes:
    body = [_der_int(1), _tlv(0x04, scalar.to_bytes(32, "big")), _tlv(0xA0, _der_oid(P256_OID))]
    if public is not None:
        body.append(_tlv(0xA1, _tlv(0x03, b"\x00" + public)))
    return pem_block("EC PRIVATE KEY", _seq(*body))


def off_curve_point() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    point = bytearray(key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint))
    point[-1] ^= 1
    return int.from_bytes(key.private_numbers().private_value.to_bytes(32, "big"), "big"), \
        bytes(point)


@pytest.mark.parametrize("case,needle", [
    ("zero", "P-256 private scalar is zero"),
    ("n", "not below the curve's order"),
    ("above-n", "not below the curve's order"),
    ("off-curve", "not a point on P-256"),
])
def test_invalid_p256_keys_are_refused_in_words(run_bin, tmp_path, case, needle):
    if case == "off-curve":
        scalar, point = off_curve_point()
        pem = sec1_p256(scalar, point)
    else:
        pem = sec1_p256({"zero": 0, "n": P256_N, "above-n": P256_N + 5}[case])
    key = tmp_path / f"{case}.pem"
    key.write_bytes(pem)
    line = assert_error(run_bin(["sign-string", "--private-key", key]), str(key), needle,
                        exit_code=EXIT_USAGE)
    assert "P-384" not in line and P256_OID not in line and "unsupported" not in line, line


# ---- messages --------------------------------------------------------------------------------

def test_pkcs12_given_as_certificate_and_private_key(cp, pki, tmp_path):
    files = pki.leaf("p256")
    p12 = files.write("both.p12", pkcs12(files.leaf, (), ""))
    r = cp(cert=p12, key=p12, cache=False).within_bounds()
    assert_error(r, str(p12), "PKCS#12", "drop --private-key", exit_code=EXIT_USAGE)


def test_a_leaf_with_an_empty_subject_is_named_by_file_and_position(cp, pki, tmp_path):
    own = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")]))
            .public_key(own.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .sign(own, hashes.SHA256()))
    path = tmp_path / "empty-subject.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # (a key that does not match may be a rotation half done: read again for up to 3 s)
    r = cp(cert=path, key=pki.leaf("p256").key(), cache=False).within_bounds()
    line = assert_error(r, f"the first certificate in {path}", "subject is empty",
                        "does not match the private key", exit_code=EXIT_USAGE)
    assert 'certificate ""' not in line, line


def test_parser_jargon_becomes_words(run_bin, pki, tmp_path):
    der = pki.leaf("p256").cert_der.read_bytes()
    cut = tmp_path / "cut.der"
    cut.write_bytes(der[: len(der) // 2])
    line = assert_error(run_bin(["read-certificate-data", "--certificate", cut]), str(cut),
                        "truncated", exit_code=EXIT_USAGE)
    assert not any(j in line for j in JARGON), line
    key = tmp_path / "cut.key"
    key.write_bytes(pem_block("EC PRIVATE KEY", b"\x30\x20\x02\x01\x01\x04"))
    line = assert_error(run_bin(["sign-string", "--private-key", key]), str(key),
                        exit_code=EXIT_USAGE)
    assert not any(j in line for j in JARGON), line


def test_a_pkcs11_pin_is_never_echoed(cp, tmp_path):
    uri = "pkcs11:token=prod;object=workload?pin-value=s3cr3t-1234"
    r = within(cp(key=uri, cache=False), fast=True)
    line = assert_error(r, "PKCS#11", "pin-value=**redacted**", exit_code=EXIT_USAGE)
    assert "s3cr3t" not in r.stderr + r.stdout, line


def test_a_certificate_that_does_not_exist_fails_at_once(cp, tmp_path):
    missing = tmp_path / "nope" / "cert.pem"
    r = cp(cert=missing, cache=False).within_bounds()
    assert_error(r, str(missing), exit_code=EXIT_USAGE)
    assert r.elapsed < 1.0, f"{r.elapsed:.2f} s: the rotation re-read loop ran"


def test_sign_string_output_is_unchanged(run_bin, pki):
    """The seam moved the signing code: the helper's JSON output still verifies."""
    leaf = pki.leaf("p384")
    sig = json.loads(run_bin(["sign-string", "--private-key", leaf.key(), "--digest", "SHA512"],
                             check=True).stdout)
    assert isinstance(sig, str) and len(sig) > 100
