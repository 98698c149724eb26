"""Every key and certificate container ``aws_signing_helper credential-process`` reads, and
ML-DSA, through ``iamra-bootstrap credential-process`` with the helper's own command line.

Contract under test (issue 10's table; ``src/material/files.rs``, ``src/keys/``):

* PKCS#12 as ``--certificate`` with no ``--private-key``: the empty password (the helper's
  default) or one from ``--pkcs8-password``, ``--pkcs8-password-file`` or
  ``IAMRA_PKCS8_PASSWORD``; legacy (RC2-40/3DES, SHA-1 MAC) and modern (AES-256-CBC,
  PBKDF2-SHA256, SHA-256 MAC) encodings; the chain inside is sent as ``X-Amz-X509-Chain``.
* Encrypted PKCS#8 with ``--pkcs8-password`` (and the file / variable): every PBES2 variant the
  helper reads, ACM's AES-256-CBC + HMAC-SHA1 included, and scrypt. PBES1 and legacy
  ``Proc-Type: 4,ENCRYPTED`` PEM: one line naming the ``openssl`` conversion, exit 2.
* One PEM file with key + certificate (+ chain) as ``--certificate``.
* ML-DSA-44/65/87 leaves with seed-only, expanded and both PKCS#8 forms: ``AWS4-X509-MLDSA``,
  verified by the fake with OpenSSL.
* ``handle:`` key references: "not supported here, export the key or use Vault", exit 2;
  ``pkcs11:`` URIs in the static build: "need the hardware build", exit 2; a TSS2 PEM key with
  zero blobs: "malformed private key", exit 2 (real token and TPM keys:
  ``test_hardware_keys.py``). Leaves signed with SHA-224 or SHA-1: refused locally with that
  reason, no request sent. RSA-1024/8192: "unsupported key size", exit 2.
* A wrong password: one line, exit 2, the password nowhere in the output.

Every success is checked by the independent verifying fake (``tests/fakes/rolesanywhere.py``).
"""
from __future__ import annotations

import pytest

from support.cli import EXIT_USAGE, assert_error, credential_process_json
from fakes.rolesanywhere import FakeRolesAnywhere
from support.fake_ra import REGION, ra_flags
from support.pki import (PKCS8_SCHEMES, PKCS12_PROFILES, combined_pem, encrypted_pkcs8,
                         legacy_encrypted_pem, make_ca, make_intermediate, make_leaf, pkcs12,
                         tss2_pem, write_leaf_files)
from support.ra_client import b64

PASSWORD = "correct horse battery staple"


@pytest.fixture
def cp(run_bin, fake_ra):
    """``credential-process`` against ``fake_ra`` with the helper's flags, no cache."""

    def run(*args, env=None):
        return run_bin(["credential-process", *ra_flags(fake_ra), "--no-cache", *args], env=env)

    return run


def assert_signed_by(proc, fake, files, algorithm: str, chain=()):
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    assert proc.stdout == credential_process_json(fake.issued[-1])
    rec = fake.requests[-1]
    assert rec.verdict == "accepted", rec.reason
    assert rec.headers["authorization"].startswith(f"{algorithm} Credential={files.serial}/")
    assert rec.headers["x-amz-x509"] == b64(files.leaf.cert)
    if chain:
        assert rec.headers["x-amz-x509-chain"] == ",".join(b64(c.cert) for c in chain)
    else:
        assert "x-amz-x509-chain" not in rec.headers


def assert_refused(proc, fake, *needles):
    line = assert_error(proc, *needles, exit_code=EXIT_USAGE)
    assert fake.requests == [], "refused before any request"
    return line


# ---- PKCS#12 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", list(PKCS12_PROFILES))
def test_pkcs12_with_the_empty_password_as_the_helper(cp, pki, fake_ra, profile):
    files = pki.leaf("rsa2048", via_intermediate=True)
    p12 = files.write(f"id-{profile}.p12", pkcs12(files.leaf, files.chain, "", profile))
    assert_signed_by(cp("--certificate", p12), fake_ra, files, "AWS4-X509-RSA-SHA256",
                     files.chain)


@pytest.mark.parametrize("how", ["flag", "file", "env"])
@pytest.mark.parametrize("profile", list(PKCS12_PROFILES))
def test_pkcs12_with_a_password(cp, pki, fake_ra, profile, how, tmp_path):
    files = pki.leaf("p256", via_intermediate=True)
    p12 = files.write(f"pw-{profile}.p12", pkcs12(files.leaf, files.chain, PASSWORD, profile))
    args, env = password_args(how, PASSWORD, tmp_path)
    assert_signed_by(cp("--certificate", p12, *args, env=env), fake_ra, files,
                     "AWS4-X509-ECDSA-SHA256", files.chain)


def test_pkcs12_wrong_or_missing_password(cp, pki, fake_ra):
    files = pki.leaf("p256")
    p12 = files.write("wrong.p12", pkcs12(files.leaf, (), PASSWORD, "modern"))
    line = assert_refused(cp("--certificate", p12, "--pkcs8-password", "not-the-password"),
                          fake_ra, "wrong.p12", "password does not decrypt")
    assert "not-the-password" not in line
    assert_refused(cp("--certificate", p12), fake_ra, "protected by a password",
                   "--pkcs8-password-file")


def test_pkcs12_refuses_intermediates_flag(cp, pki, fake_ra):
    files = pki.leaf("p256", via_intermediate=True)
    p12 = files.write("chain.p12", pkcs12(files.leaf, files.chain, "", "modern"))
    assert_refused(cp("--certificate", p12, "--intermediates", files.chain_pem), fake_ra,
                   "carries its own chain")


# ---- encrypted PKCS#8 -------------------------------------------------------------------------

def password_args(how: str, password: str, tmp_path):
    if how == "flag":
        return ["--pkcs8-password", password], None
    if how == "env":
        return [], {"IAMRA_PKCS8_PASSWORD": password}
    path = tmp_path / "key-password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return ["--pkcs8-password-file", path], None


PBES2 = [s for s in PKCS8_SCHEMES if not s.startswith("pbes1")]


@pytest.mark.parametrize("scheme", PBES2)
@pytest.mark.parametrize("key", ["rsa2048", "p384"])
def test_encrypted_pkcs8_pbes2(cp, pki, fake_ra, key, scheme):
    files = pki.leaf(key)
    enc = files.write(f"key.{scheme}.p8.pem", encrypted_pkcs8(files.leaf.key, PASSWORD, scheme))
    alg = "AWS4-X509-RSA-SHA256" if key.startswith("rsa") else "AWS4-X509-ECDSA-SHA256"
    assert_signed_by(cp("--certificate", files.cert_pem, "--private-key", enc,
                        "--pkcs8-password", PASSWORD), fake_ra, files, alg)


@pytest.mark.parametrize("how", ["file", "env"])
def test_acm_export_with_password_file_or_env(cp, pki, fake_ra, how, tmp_path):
    """ACM's exportable certificate: key in PBES2 AES-256-CBC + HMAC-SHA1, chain in a bundle."""
    files = pki.leaf("rsa2048", via_intermediate=True)
    enc = files.write("acm.key.pem", encrypted_pkcs8(files.leaf.key, PASSWORD, "aes256-sha1"))
    args, env = password_args(how, PASSWORD, tmp_path)
    proc = cp("--certificate", files.cert_pem, "--intermediates", files.chain_pem,
              "--private-key", enc, *args, env=env)
    assert_signed_by(proc, fake_ra, files, "AWS4-X509-RSA-SHA256", files.chain)


def test_encrypted_pkcs8_wrong_and_missing_password(cp, pki, fake_ra):
    files = pki.leaf("p256")
    enc = files.write("key.enc.pem", encrypted_pkcs8(files.leaf.key, PASSWORD, "aes256-sha256"))
    base = ["--certificate", files.cert_pem, "--private-key", enc]
    line = assert_refused(cp(*base, "--pkcs8-password", "hunter2-wrong"), fake_ra,
                          "password does not decrypt")
    assert "hunter2" not in line
    assert_refused(cp(*base), fake_ra, "the private key is encrypted", "--pkcs8-password-file")
    proc = cp(*base, "--pkcs8-password", "hunter2-wrong", "--debug")
    assert "hunter2" not in proc.stderr


def test_password_given_twice(cp, pki, fake_ra, tmp_path):
    files = pki.leaf("p256")
    args, _ = password_args("file", PASSWORD, tmp_path)
    assert_refused(cp("--certificate", files.cert_pem, "--private-key", files.key_pkcs8,
                      "--pkcs8-password", PASSWORD, *args), fake_ra, "give the password once")


def test_pbes1_refused_with_the_conversion(cp, pki, fake_ra):
    files = pki.leaf("p256")
    enc = files.write("key.pbes1.pem",
                      encrypted_pkcs8(files.leaf.key, PASSWORD, "pbes1-sha1-3des"))
    assert_refused(cp("--certificate", files.cert_pem, "--private-key", enc,
                      "--pkcs8-password", PASSWORD), fake_ra,
                   "pbeWithSHAAnd3-KeyTripleDES-CBC", "openssl pkcs8 -topk8 -v2 aes-256-cbc")


@pytest.mark.parametrize("key", ["rsa2048", "p256"])
def test_legacy_proc_type_pem_refused_with_the_conversion(cp, pki, fake_ra, key):
    files = pki.leaf(key)
    enc = files.write("key.legacy.pem", legacy_encrypted_pem(files.leaf.key, PASSWORD))
    for extra in ([], ["--pkcs8-password", PASSWORD]):
        assert_refused(cp("--certificate", files.cert_pem, "--private-key", enc, *extra),
                       fake_ra, "the private key is encrypted", "Proc-Type: 4,ENCRYPTED",
                       "openssl pkcs8 -topk8")


# ---- combined PEM -----------------------------------------------------------------------------

@pytest.mark.parametrize("key_first", [True, False], ids=["key-first", "certs-first"])
@pytest.mark.parametrize("key, key_fmt", [("rsa2048", "pkcs1"), ("p256", "sec1"),
                                          ("p384", "pkcs8")])
def test_combined_pem_as_certificate(cp, pki, fake_ra, key, key_fmt, key_first):
    files = pki.leaf(key, via_intermediate=True)
    pem = files.write(f"combined-{key_fmt}-{key_first}.pem",
                      combined_pem(files.leaf, files.chain, key_fmt, key_first))
    alg = "AWS4-X509-RSA-SHA256" if key.startswith("rsa") else "AWS4-X509-ECDSA-SHA256"
    assert_signed_by(cp("--certificate", pem), fake_ra, files, alg, files.chain)


def test_containers_send_a_two_level_chain_in_issuer_order(run_bin, tmp_path):
    """PKCS#12 and combined PEM files keep no order: the chain is sent nearest issuer first."""
    root = make_ca("deep root")
    int1 = make_intermediate(root, "deep intermediate 1", path_length=1)
    int2 = make_intermediate(int1, "deep intermediate 2", path_length=0)
    leaf = make_leaf(int2, key="p256")
    files = write_leaf_files(tmp_path / "deep", leaf, (int2, int1))
    with FakeRolesAnywhere([root.cert_pem], region=REGION) as fake:
        for name, data in (("reversed.pem", combined_pem(leaf, (int1, int2), "sec1", False)),
                           ("reversed.p12", pkcs12(leaf, (int1, int2), "", "modern"))):
            proc = run_bin(["credential-process", *ra_flags(fake), "--no-cache",
                            "--certificate", files.write(name, data)])
            assert_signed_by(proc, fake, files, "AWS4-X509-ECDSA-SHA256", (int2, int1))


def test_certificate_alone_without_key_is_refused(cp, pki, fake_ra):
    assert_refused(cp("--certificate", pki.leaf("p256").cert_pem), fake_ra,
                   "missing --private-key")


# ---- ML-DSA -----------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["mldsa-seed", "mldsa-expanded", "mldsa-both", "pkcs8"])
@pytest.mark.parametrize("level", ["mldsa44", "mldsa65", "mldsa87"])
def test_mldsa(cp, pki, fake_ra, level, form):
    files = pki.leaf(level)
    assert_signed_by(cp("--certificate", files.cert_pem, "--private-key", files.key(form)),
                     fake_ra, files, "AWS4-X509-MLDSA")


def test_mldsa_encrypted_pkcs8_and_pkcs12_free_combined(cp, pki, fake_ra):
    files = pki.leaf("mldsa65")
    enc = files.write("mldsa.enc.pem", encrypted_pkcs8(files.leaf.key, PASSWORD))
    assert_signed_by(cp("--certificate", files.cert_der, "--private-key", enc,
                        "--pkcs8-password", PASSWORD), fake_ra, files, "AWS4-X509-MLDSA")
    pem = files.write("mldsa.combined.pem", combined_pem(files.leaf, (), "mldsa-both"))
    assert_signed_by(cp("--certificate", pem), fake_ra, files, "AWS4-X509-MLDSA")


def test_mldsa_key_for_another_certificate(cp, pki, fake_ra):
    a, b = pki.leaf("mldsa44"), pki.issue("mldsa44")
    assert_refused(cp("--certificate", a.cert_pem, "--private-key", b.key("mldsa-seed")),
                   fake_ra, "does not match the private key (ML-DSA-44)")


# ---- key stores, TSS2, weak signatures, RSA sizes ---------------------------------------------

def test_key_store_references(cp, pki, fake_ra):
    assert_refused(cp("--certificate", pki.leaf("p256").cert_pem, "--private-key",
                      "handle:0x81000001"),
                   fake_ra, "is not supported here", "export the key", "Vault")
    proc = cp("--certificate", pki.leaf("p256").cert_pem, "--private-key",
              "pkcs11:token=iamra;object=workload;type=private")
    if "need the hardware build" in proc.stderr:  # the static build; the host build reads it
        assert_refused(proc, fake_ra, "need the hardware build", "--features hardware")


def test_placeholder_tss2_pem_key_is_malformed(cp, pki, fake_ra):
    files = pki.leaf("p256")
    tss2 = files.write("key.tss2.pem", tss2_pem())
    assert_refused(cp("--certificate", files.cert_pem, "--private-key", tss2,
                      env={"TPM_DEVICE": "/nonexistent/tpmrm0"}), fake_ra, "malformed private key", "TSS2")


@pytest.mark.parametrize("hash_alg, name", [("sha224", "SHA-224"), ("sha1", "SHA-1")])
def test_weakly_signed_leaf_refused_locally(cp, fake_ra, tmp_path, hash_alg, name):
    ca = make_ca("rsa root", key="rsa2048")
    files = write_leaf_files(tmp_path / hash_alg,
                             make_leaf(ca, key="p256", hash_alg=hash_alg))
    assert_refused(cp("--certificate", files.cert_pem, "--private-key", files.key_pkcs8),
                   fake_ra, f"is signed with {name}", "Roles Anywhere rejects", "SHA-256")


@pytest.mark.parametrize("bits", [1024, 8192])
@pytest.mark.parametrize("fmt", ["pkcs1", "pkcs8"])
def test_rsa_sizes_outside_2048_4096(cp, fake_ra, rsa_outside, bits, fmt):
    files = rsa_outside[bits]
    assert_refused(cp("--certificate", files.cert_pem, "--private-key", files.key(fmt)),
                   fake_ra, f"unsupported key size: RSA-{bits}", "2048 to 4096")


@pytest.fixture(scope="module")
def rsa_outside(tmp_path_factory, pki):
    return {bits: write_leaf_files(tmp_path_factory.mktemp(f"rsa{bits}"),
                                   make_leaf(pki.root, key=f"rsa{bits}"))
            for bits in (1024, 8192)}


def test_help_names_the_password_flags_and_hides_the_password(run_bin):
    out = run_bin(["credential-process", "--help"],
                  env={"IAMRA_PKCS8_PASSWORD": "topsecret-in-env"}).stdout
    for flag in ("--pkcs8-password", "--pkcs8-password-file", "IAMRA_PKCS8_PASSWORD_FILE",
                 "[env: IAMRA_PKCS8_PASSWORD]"):
        assert flag in out
    assert "topsecret" not in out
