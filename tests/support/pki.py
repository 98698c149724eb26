"""Test PKI factory (importable helpers + pytest plugin providing the ``pki`` fixture).

Everything is generated with ``cryptography``; nothing touches the network or a real CA.

Helpers
-------
* ``new_key(kind)``: ``rsa1024`` | ``rsa2048`` | ``rsa3072`` | ``rsa4096`` | ``rsa8192`` |
  ``p256`` | ``p384`` | ``p521`` | ``ed25519`` | ``mldsa44`` | ``mldsa65`` | ``mldsa87``.
* ``make_ca(name, key="p256", days_valid=3650, path_length=None)`` -> :class:`Issued` (self-signed
  root, CA:TRUE, keyCertSign/cRLSign).
* ``make_intermediate(parent, name, key="p256", path_length=0)`` -> :class:`Issued`.
* ``make_leaf(issuer, key="rsa2048", ...)`` -> :class:`Issued`; knobs for the trust-model rules:
  ``days_valid``, ``not_before``, ``not_after``, ``key_usage_digital_signature``, ``ca``,
  ``basic_constraints``, ``v1`` (a real X.509 v1 certificate, DER built here), ``hash_alg``
  (``sha256`` | ``sha384`` | ``sha512`` | ``sha224`` | ``sha1``, the latter for RSA issuers
  only; ignored for ML-DSA issuers, whose signatures carry no separate hash).
* ``make_svid(issuer, spiffe_id, key="p256", ...)`` -> :class:`Issued`: an X.509-SVID as SPIRE
  issues one (as the X509-SVID specification, section 4, has it: the SPIFFE ID as the one URI
  SAN, CA:FALSE, keyUsage digitalSignature + keyEncipherment + keyAgreement, EKU serverAuth +
  clientAuth).
* Writers: ``write_cert(path, cert, fmt="pem"|"der")``, ``write_bundle(path, *certs)`` (PEM, in
  the given order: leaf then intermediates), ``write_key(path, key, fmt)`` with ``fmt`` =
  ``pkcs8`` (``PRIVATE KEY``), ``pkcs1`` (``RSA PRIVATE KEY``) or ``sec1`` (``EC PRIVATE KEY``).
* ``write_leaf_files(directory, leaf, chain)`` -> :class:`LeafFiles` (every file format at once).
* Every other container ``aws_signing_helper`` reads (see "Key containers" below):
  ``mldsa_pkcs8(key, form)``, ``encrypted_pkcs8(key, password, scheme)``,
  ``legacy_encrypted_pem(key, password)``, ``pkcs12(leaf, chain, password, profile)``,
  ``combined_pem(leaf, chain, key_fmt)``, ``tss2_pem()``.

Fixture
-------
``pki`` (session scope): a :class:`Pki` with ``root`` (P-256), ``intermediate`` (P-256, issued by
the root), their PEM files ``root_pem`` / ``intermediate_pem``, and ``leaf(key, via_intermediate)``
returning memoised ready-made :class:`LeafFiles` (``rsa2048``, ``p256``, ``p384``, ...), plus
``issue(...)`` for one-off leaves with custom options, each in a fresh directory. Treat the
files as read-only: tests that modify files write their own copies under ``tmp_path``.
"""
from __future__ import annotations

import base64
import datetime as dt
import itertools
import pathlib
import subprocess
import tempfile
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.x509.oid import NameOID

KEY_KINDS = ("rsa1024", "rsa2048", "rsa3072", "rsa4096", "rsa8192", "p256", "p384", "p521",
             "ed25519", "mldsa44", "mldsa65", "mldsa87")
_CURVES = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1}
_MLDSA = {"mldsa44": mldsa.MLDSA44PrivateKey, "mldsa65": mldsa.MLDSA65PrivateKey,
          "mldsa87": mldsa.MLDSA87PrivateKey}
_MLDSA_KEYS = tuple(_MLDSA.values())
_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384,
           "sha512": hashes.SHA512, "sha224": hashes.SHA224}


def new_key(kind: str):
    """A fresh private key of the given kind (see ``KEY_KINDS``)."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind]())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind in _MLDSA:
        return _MLDSA[kind].generate()
    raise ValueError(f"unknown key kind {kind!r}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iamra-bootstrap tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: object

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def key_pem(self, fmt: str = "pkcs8") -> bytes:
        return key_pem(self.key, fmt)


def _signing_hash(issuer_key, hash_alg: str):
    if isinstance(issuer_key, (ed25519.Ed25519PrivateKey, *_MLDSA_KEYS)):
        return None
    return _HASHES[hash_alg]()


def _ski_aki(builder: x509.CertificateBuilder, public_key, issuer: Issued | None):
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
    issuer_pub = issuer.key.public_key() if issuer is not None else public_key
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub), False)


def _validity(days_valid: int, not_before: dt.datetime | None,
              not_after: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    start = not_before or (_now() - dt.timedelta(hours=1))
    end = not_after or (start + dt.timedelta(days=days_valid))
    return start, end


def make_ca(name: str = "iamra test root", key: str = "p256", days_valid: int = 3650,
            path_length: int | None = None, not_before: dt.datetime | None = None,
            not_after: dt.datetime | None = None) -> Issued:
    """A self-signed root CA."""
    return _make_ca(None, name, key, days_valid, path_length, not_before, not_after)


def make_intermediate(parent: Issued, name: str = "iamra test intermediate", key: str = "p256",
                      days_valid: int = 1825, path_length: int | None = 0,
                      not_before: dt.datetime | None = None,
                      not_after: dt.datetime | None = None) -> Issued:
    """An intermediate CA issued by ``parent``."""
    return _make_ca(parent, name, key, days_valid, path_length, not_before, not_after)


def _make_ca(parent, name, key, days_valid, path_length, not_before, not_after) -> Issued:
    private = new_key(key)
    start, end = _validity(days_valid, not_before, not_after)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(parent.cert.subject if parent else _name(name))
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    )
    builder = _ski_aki(builder, private.public_key(), parent)
    signer = parent.key if parent else private
    return Issued(builder.sign(signer, _signing_hash(signer, "sha256")), private)


def make_leaf(issuer: Issued, key: str = "rsa2048", cn: str = "workload.test.invalid",
              days_valid: int = 30, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None, key_usage_digital_signature: bool = True,
              ca: bool = False, basic_constraints: bool = True, v1: bool = False,
              hash_alg: str = "sha256", private_key=None) -> Issued:
    """An end-entity certificate issued by ``issuer``.

    ``ca=True`` makes basicConstraints CA:TRUE (invalid as a Roles Anywhere leaf);
    ``basic_constraints=False`` omits the extension (what OpenBao does by default);
    ``v1=True`` builds a genuine X.509 v1 certificate (no version field, no extensions).
    """
    private = private_key or new_key(key)
    start, end = _validity(days_valid, not_before, not_after)
    serial = x509.random_serial_number()
    if v1:
        return Issued(_make_v1(issuer, private.public_key(), _name(cn), serial, start, end),
                      private)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.KeyUsage(
            digital_signature=key_usage_digital_signature,
            content_commitment=not key_usage_digital_signature, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), False)
    )
    if basic_constraints or ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    builder = _ski_aki(builder, private.public_key(), issuer)
    if hash_alg == "sha1":
        return Issued(_resign_sha1(builder.sign(issuer.key, hashes.SHA256()), issuer), private)
    return Issued(builder.sign(issuer.key, _signing_hash(issuer.key, hash_alg)), private)


def make_svid(issuer: Issued, spiffe_id: str, key: str = "p256", days_valid: int = 1,
              not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> Issued:
    """An X.509-SVID for ``spiffe_id`` issued by ``issuer`` (see the module docstring)."""
    private = new_key(key)
    start, end = _validity(days_valid, not_before, not_after)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE")]))
        .issuer_name(issuer.cert.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH,
                                              x509.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(spiffe_id)]), critical=False)
    )
    builder = _ski_aki(builder, private.public_key(), issuer)
    return Issued(builder.sign(issuer.key, _signing_hash(issuer.key, "sha256")), private)


_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")  # OID sha256WithRSAEncryption
_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")    # OID sha1WithRSAEncryption


def _resign_sha1(cert: x509.Certificate, issuer: Issued) -> x509.Certificate:
    """Turn a sha256WithRSA certificate into a sha1WithRSA one (cryptography refuses to sign
    certificates with SHA-1). Both OIDs and both signatures have the same length, so the DER
    is patched in place."""
    if not isinstance(issuer.key, rsa.RSAPrivateKey):
        raise ValueError("SHA-1 certificates need an RSA issuer")
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    new_tbs = tbs.replace(_SHA256_RSA, _SHA1_RSA, 1)
    signature = issuer.key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA1())
    head, rest = der[:der.index(tbs)], der[der.index(tbs) + len(tbs):]
    rest = rest.replace(_SHA256_RSA, _SHA1_RSA, 1).replace(cert.signature, signature)
    return x509.load_der_x509_certificate(head + new_tbs + rest)


# ---- X.509 v1 (cryptography only writes v3): a minimal DER encoder ---------------------------

def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _der_oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        while p > 0x7F:
            p >>= 7
            chunk.insert(0, 0x80 | (p & 0x7F))
        body += bytes(chunk)
    return _tlv(0x06, bytes(body))


def _der_time(t: dt.datetime) -> bytes:
    t = t.astimezone(dt.timezone.utc)
    if 1950 <= t.year < 2050:
        return _tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").encode())


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _make_v1(issuer: Issued, public_key, subject: x509.Name, serial: int,
             start: dt.datetime, end: dt.datetime) -> x509.Certificate:
    if isinstance(issuer.key, rsa.RSAPrivateKey):
        alg = _seq(_der_oid("1.2.840.113549.1.1.11"), b"\x05\x00")  # sha256WithRSAEncryption
        sign = lambda data: issuer.key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # noqa
    elif isinstance(issuer.key, ec.EllipticCurvePrivateKey):
        alg = _seq(_der_oid("1.2.840.10045.4.3.2"))  # ecdsa-with-SHA256
        sign = lambda data: issuer.key.sign(data, ec.ECDSA(hashes.SHA256()))  # noqa
    else:
        raise ValueError("v1 certificates need an RSA or EC issuer")
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    tbs = _seq(_der_int(serial), alg, issuer.cert.subject.public_bytes(),
               _seq(_der_time(start), _der_time(end)), subject.public_bytes(), spki)
    der = _seq(tbs, alg, _tlv(0x03, b"\x00" + sign(tbs)))
    cert = x509.load_der_x509_certificate(der)
    assert cert.version == x509.Version.v1
    return cert


# ---- writers --------------------------------------------------------------------------------

def _cert_obj(cert) -> x509.Certificate:
    return cert.cert if isinstance(cert, Issued) else cert


def key_pem(key, fmt: str = "pkcs8") -> bytes:
    """PEM of a private key: ``pkcs8`` (any key), ``pkcs1`` (RSA only), ``sec1`` (EC only);
    for ML-DSA also ``mldsa-seed`` | ``mldsa-expanded`` | ``mldsa-both`` (see ``mldsa_pkcs8``)."""
    if fmt.startswith("mldsa-"):
        return pem_block("PRIVATE KEY", mldsa_pkcs8(key, fmt[6:]))
    if fmt == "pkcs8":
        private_format = serialization.PrivateFormat.PKCS8
    elif (fmt == "pkcs1" and isinstance(key, rsa.RSAPrivateKey)) or (
            fmt == "sec1" and isinstance(key, ec.EllipticCurvePrivateKey)):
        private_format = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        raise ValueError(f"{fmt} cannot hold a {type(key).__name__}")
    return key.private_bytes(serialization.Encoding.PEM, private_format,
                             serialization.NoEncryption())


def write_cert(path, cert, fmt: str = "pem") -> pathlib.Path:
    """Write one certificate (``Issued`` or ``x509.Certificate``) as PEM or DER."""
    encoding = {"pem": serialization.Encoding.PEM, "der": serialization.Encoding.DER}[fmt]
    path = pathlib.Path(path)
    path.write_bytes(_cert_obj(cert).public_bytes(encoding))
    return path


def write_bundle(path, *certs) -> pathlib.Path:
    """Write a PEM bundle of the certificates in the given order (leaf first)."""
    path = pathlib.Path(path)
    path.write_bytes(b"".join(_cert_obj(c).public_bytes(serialization.Encoding.PEM)
                              for c in certs))
    return path


def write_key(path, key, fmt: str = "pkcs8") -> pathlib.Path:
    path = pathlib.Path(path)
    path.write_bytes(key_pem(key.key if isinstance(key, Issued) else key, fmt))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class LeafFiles:
    """A leaf, its intermediates (nearest first) and every file form of them."""

    leaf: Issued
    chain: tuple[Issued, ...]
    dir: pathlib.Path
    cert_pem: pathlib.Path            # the leaf alone, PEM
    cert_der: pathlib.Path            # the leaf alone, DER
    bundle_pem: pathlib.Path          # leaf followed by the intermediates (PEM)
    chain_pem: pathlib.Path | None    # the intermediates alone (for --intermediates)
    key_pkcs8: pathlib.Path
    key_traditional: pathlib.Path | None = None  # PKCS#1 (RSA) or SEC1 (EC)

    @property
    def serial(self) -> int:
        return self.leaf.serial

    def key(self, fmt: str = "pkcs8") -> pathlib.Path:
        """The key file in ``pkcs8``, ``pkcs1`` or ``sec1`` form, or (written on first use) an
        ML-DSA form ``mldsa-seed`` | ``mldsa-expanded`` | ``mldsa-both``."""
        if fmt == "pkcs8":
            return self.key_pkcs8
        if fmt.startswith("mldsa-"):
            path = self.dir / f"key.{fmt}.pem"
            if not path.exists():
                write_key(path, self.leaf.key, fmt)
            return path
        if self.key_traditional is None or fmt != _traditional_fmt(self.leaf.key):
            raise ValueError(f"no {fmt} form for this key")
        return self.key_traditional

    def write(self, name: str, data: bytes) -> pathlib.Path:
        """Write ``data`` (a container built by the helpers below) next to the leaf, 0600."""
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


def _traditional_fmt(key) -> str | None:
    if isinstance(key, rsa.RSAPrivateKey):
        return "pkcs1"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "sec1"
    return None


def write_leaf_files(directory, leaf: Issued, chain=()) -> LeafFiles:
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chain = tuple(chain)
    trad = _traditional_fmt(leaf.key)
    return LeafFiles(
        leaf=leaf,
        chain=chain,
        dir=directory,
        cert_pem=write_cert(directory / "cert.pem", leaf),
        cert_der=write_cert(directory / "cert.der", leaf, "der"),
        bundle_pem=write_bundle(directory / "bundle.pem", leaf, *chain),
        chain_pem=write_bundle(directory / "chain.pem", *chain) if chain else None,
        key_pkcs8=write_key(directory / "key.pkcs8.pem", leaf.key),
        key_traditional=write_key(directory / f"key.{trad}.pem", leaf.key, trad) if trad else None,
    )


class Pki:
    """A root CA, an intermediate and leaves, written below ``directory``."""

    def __init__(self, directory: pathlib.Path):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root = make_ca("iamra test root")
        self.intermediate = make_intermediate(self.root, "iamra test intermediate")
        self.root_pem = write_cert(self.dir / "root.pem", self.root)
        self.intermediate_pem = write_cert(self.dir / "intermediate.pem", self.intermediate)
        # One ML-DSA root per level: ML-DSA leaves are issued by a root of their own level.
        self.mldsa_roots = {kind: make_ca(f"iamra test {kind} root", key=kind) for kind in _MLDSA}
        self.trust_anchors = [self.root.cert_pem,
                              *(ca.cert_pem for ca in self.mldsa_roots.values())]
        self._leaves: dict[tuple[str, bool], LeafFiles] = {}
        self._seq = itertools.count()

    def leaf(self, key: str = "p256", via_intermediate: bool = False) -> LeafFiles:
        """A ready-made valid leaf (memoised per key kind and issuer)."""
        ident = (key, via_intermediate)
        if ident not in self._leaves:
            self._leaves[ident] = self.issue(key=key, via_intermediate=via_intermediate)
        return self._leaves[ident]

    def issue(self, key: str = "p256", via_intermediate: bool = False, issuer: Issued | None = None,
              chain=None, **options) -> LeafFiles:
        """A new leaf with ``make_leaf`` options, written to a fresh directory."""
        if issuer is None and key in _MLDSA:
            issuer = self.mldsa_roots[key]
        if issuer is None:
            issuer = self.intermediate if via_intermediate else self.root
            chain = (self.intermediate,) if via_intermediate else ()
        leaf = make_leaf(issuer, key=key, **options)
        return write_leaf_files(self.dir / f"leaf-{next(self._seq)}-{key}", leaf, chain or ())


# ---- Key containers: every format aws_signing_helper reads ----------------------------------
#
# Made with the ``openssl`` command line (OpenSSL 3) where it can write them, as users make
# them; ML-DSA forms with ``cryptography`` and ``dilithium-py`` (OpenSSL 3.0 knows no ML-DSA).

_MLDSA_OIDS = {"mldsa44": "2.16.840.1.101.3.4.3.17", "mldsa65": "2.16.840.1.101.3.4.3.18",
               "mldsa87": "2.16.840.1.101.3.4.3.19"}

# PBES2 variants of encrypted PKCS#8 (``openssl pkcs8 -topk8`` options) and PBES1.
PKCS8_SCHEMES = {
    "aes128-sha1": ["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"],
    "aes256-sha1": ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1"],   # ACM's export
    "aes192-sha256": ["-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA256"],
    "aes256-sha256": ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"],
    "aes256-sha384": ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA384"],
    "aes128-sha512": ["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"],
    "scrypt": ["-v2", "aes-256-cbc", "-scrypt"],
    "pbes1-sha1-3des": ["-v1", "PBE-SHA1-3DES"],
}
# ``openssl pkcs12 -export`` options per encoding.
PKCS12_PROFILES = {
    # OpenSSL 3's default, spelled out: AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC.
    "modern": ["-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256"],
    "legacy-3des": ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
    # What OpenSSL 1.x wrote (and the helper's make test-certs): RC2-40 certificates, 3DES key.
    "legacy-rc2": ["-legacy"],
}


def pem_block(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines)
            + f"\n-----END {label}-----\n").encode()


def _mldsa_kind(key) -> str:
    return next(k for k, cls in _MLDSA.items() if isinstance(key, cls))


def mldsa_expanded(key) -> bytes:
    """The FIPS 204 expanded private key (skEncode) of an ML-DSA key, derived from its seed with
    dilithium-py (cryptography exports only the seed); checked against cryptography's public
    key."""
    from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87
    impl = {"mldsa44": ML_DSA_44, "mldsa65": ML_DSA_65, "mldsa87": ML_DSA_87}[_mldsa_kind(key)]
    public, expanded = impl.key_derive(key.private_bytes_raw())
    assert public == key.public_key().public_bytes_raw(), "dilithium-py and OpenSSL disagree"
    return expanded


def mldsa_pkcs8(key, form: str = "seed") -> bytes:
    """DER PKCS#8 of an ML-DSA key in the ``ML-DSA-PrivateKey`` CHOICE form OpenSSL 3.5 writes:
    ``seed`` ([0] IMPLICIT OCTET STRING), ``expanded`` (OCTET STRING) or ``both`` (SEQUENCE of
    the two)."""
    seed = key.private_bytes_raw()
    if form == "seed":
        inner = _tlv(0x80, seed)
    elif form == "expanded":
        inner = _tlv(0x04, mldsa_expanded(key))
    elif form == "both":
        inner = _seq(_tlv(0x04, seed), _tlv(0x04, mldsa_expanded(key)))
    else:
        raise ValueError(f"unknown ML-DSA PKCS#8 form {form!r}")
    der = _seq(_der_int(0), _seq(_der_oid(_MLDSA_OIDS[_mldsa_kind(key)])), _tlv(0x04, inner))
    if form == "seed":
        assert der == key.private_bytes(serialization.Encoding.DER,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    return der


def _openssl(*args: str, stdin: bytes) -> bytes:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True,
                          check=True).stdout


def encrypted_pkcs8(key, password: str, scheme: str = "aes256-sha256") -> bytes:
    """``ENCRYPTED PRIVATE KEY`` PEM; ``scheme`` is a key of ``PKCS8_SCHEMES``. ML-DSA keys
    are encrypted by cryptography (PBES2, AES-256-CBC, HMAC-SHA256) whatever the scheme."""
    if isinstance(key, _MLDSA_KEYS):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(password.encode()))
    return _openssl("pkcs8", "-topk8", *PKCS8_SCHEMES[scheme], "-passout", f"pass:{password}",
                    stdin=key_pem(key))


def legacy_encrypted_pem(key, password: str) -> bytes:
    """OpenSSL's traditional encrypted PEM (``Proc-Type: 4,ENCRYPTED``, AES-256-CBC)."""
    cmd = ["rsa", "-traditional"] if isinstance(key, rsa.RSAPrivateKey) else ["ec"]
    out = _openssl(*cmd, "-aes256", "-passout", f"pass:{password}", stdin=key_pem(key))
    assert b"Proc-Type: 4,ENCRYPTED" in out
    return out


def pkcs12(leaf: Issued, chain=(), password: str = "", profile: str = "modern") -> bytes:
    """A DER PKCS#12 file with the key, the leaf and the chain (``openssl pkcs12 -export``)."""
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        write_key(d / "key.pem", leaf.key)
        write_bundle(d / "cert.pem", leaf)
        extra = []
        if chain:
            write_bundle(d / "chain.pem", *chain)
            extra = ["-certfile", str(d / "chain.pem")]
        return _openssl("pkcs12", "-export", "-inkey", str(d / "key.pem"),
                        "-in", str(d / "cert.pem"), *extra, *PKCS12_PROFILES[profile],
                        "-passout", f"pass:{password}", stdin=b"")


def combined_pem(leaf: Issued, chain=(), key_fmt: str = "pkcs8", key_first: bool = True) -> bytes:
    """One PEM file with the key, the leaf and the chain."""
    certs = b"".join(_cert_obj(c).public_bytes(serialization.Encoding.PEM)
                     for c in (leaf, *chain))
    key = key_pem(leaf.key, key_fmt)
    return key + certs if key_first else certs + key


def tss2_pem() -> bytes:
    """A ``TSS2 PRIVATE KEY`` PEM (a TPM-wrapped key as tpm2-tss-engine writes it): the OID
    2.23.133.10.1.3 (loadable key), emptyAuth, parent handle and opaque public/private blobs."""
    der = _seq(_der_oid("2.23.133.10.1.3"), _tlv(0xA0, _tlv(0x01, b"\xff")),
               _der_int(0x40000001), _tlv(0x04, b"\x00" * 32), _tlv(0x04, b"\x00" * 48))
    return pem_block("TSS2 PRIVATE KEY", der)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))
