#!/usr/bin/env python3
"""Writes the ML-DSA known-answer vectors in this folder (run once; the output is committed).

Independent of the product: the certificates come from ``cryptography`` (OpenSSL 3.5+), the
canonical request and string to sign from the test fake's own canonicalisation
(``tests/fakes/rolesanywhere.py``, written from the protocol notes), the expected signature from
``dilithium-py`` (a separate pure-Python FIPS 204 implementation) signing deterministically with
an empty context, and each signature is checked with OpenSSL through ``cryptography``.

For each level L in 44/65/87: ``mldsaL.cert.pem`` (leaf, ML-DSA-L, issued by an ML-DSA-L root,
valid 2026-01-01..2046-01-01, fixed serial), ``mldsaL.key.pem`` (seed-only PKCS#8, fixed seed)
and ``vectors.json`` entries: body, query, canonical request, string to sign, signature,
authorization, all at X-Amz-Date 20260301T000000Z, region us-east-1, query ARNs.

    .venv/bin/python tests/data/kat-mldsa/generate.py
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import mldsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87  # noqa: E402

from fakes.rolesanywhere import (canonical_query, canonical_request,  # noqa: E402
                                 credential_scope, string_to_sign)

LEVELS = {"44": (mldsa.MLDSA44PrivateKey, ML_DSA_44), "65": (mldsa.MLDSA65PrivateKey, ML_DSA_65),
          "87": (mldsa.MLDSA87PrivateKey, ML_DSA_87)}
DATE = "20260301T000000Z"
REGION = "us-east-1"
HOST = "rolesanywhere.us-east-1.amazonaws.com"
ARNS = {
    "trustAnchorArn": "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/"
                      "11111111-2222-3333-4444-555555555555",
    "profileArn": "arn:aws:rolesanywhere:us-east-1:123456789012:profile/"
                  "66666666-7777-8888-9999-000000000000",
    "roleArn": "arn:aws:iam::123456789012:role/ExampleRole",
}
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2046, 1, 1, tzinfo=dt.timezone.utc)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def main() -> None:
    vectors = {}
    for level, (cls, impl) in LEVELS.items():
        root_key = cls.from_seed_bytes(hashlib.sha256(f"root {level}".encode()).digest())
        leaf_seed = hashlib.sha256(f"leaf {level}".encode()).digest()
        leaf_key = cls.from_seed_bytes(leaf_seed)
        leaf = (x509.CertificateBuilder().subject_name(name(f"mldsa{level} kat leaf"))
                .issuer_name(name(f"mldsa{level} kat root")).public_key(leaf_key.public_key())
                .serial_number(0x4D4C445341_0000 + int(level)).not_valid_before(START)
                .not_valid_after(END)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), critical=True)
                .sign(root_key, None))
        (HERE / f"mldsa{level}.cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        (HERE / f"mldsa{level}.key.pem").write_bytes(leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        body = b'{"durationSeconds":3600}'
        query = canonical_query(ARNS.items())
        x509_b64 = __import__("base64").b64encode(
            leaf.public_bytes(serialization.Encoding.DER)).decode()
        headers = {"content-type": "application/json", "host": HOST, "x-amz-date": DATE,
                   "x-amz-x509": x509_b64}
        signed = sorted(headers)
        creq = canonical_request("POST", "/sessions", query, headers, signed, body)
        scope = credential_scope(DATE, REGION)
        sts = string_to_sign("AWS4-X509-MLDSA", DATE, scope, creq)
        public, expanded = impl.key_derive(leaf_seed)
        assert public == leaf_key.public_key().public_bytes_raw()
        signature = impl.sign(expanded, sts.encode(), ctx=b"", deterministic=True)
        leaf_key.public_key().verify(signature, sts.encode())  # OpenSSL agrees
        vectors[f"mldsa{level}"] = {
            "body": body.decode(), "query": query, "canonical_request": creq,
            "string_to_sign": sts, "signature": signature.hex(),
            "authorization": f"AWS4-X509-MLDSA Credential={leaf.serial_number}/{scope}, "
                             f"SignedHeaders={';'.join(signed)}, Signature={signature.hex()}",
        }
    (HERE / "vectors.json").write_text(json.dumps(vectors, indent=2) + "\n")


if __name__ == "__main__":
    main()
