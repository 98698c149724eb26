"""Kubernetes ServiceAccount tokens for tests: a signing key and projected-token-shaped JWTs.

A projected SA token (``serviceAccountToken`` volume, or the default token since 1.22) is an RS256
JWT whose claims look like::

    {"aud": ["openbao"], "exp": …, "iat": …, "nbf": …,
     "iss": "https://kubernetes.default.svc.cluster.local",
     "sub": "system:serviceaccount:<ns>:<name>",
     "kubernetes.io": {"namespace": "<ns>",
                       "serviceaccount": {"name": "<name>", "uid": "<uid>"}}}

OpenBao's kubernetes auth reads ``kubernetes.io.namespace`` and ``kubernetes.io.serviceaccount``
(see docs/vault-openbao.md §4); the fake TokenReview API (``fakes.tokenreview``)
verifies the same tokens with :attr:`SAKeys.public_pem`.

Run as a script to mint a token for a local setup (``vault/dev.sh``)::

    python tests/support/k8s.py --key sa.key --namespace payments --name bootstrapper > token
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = "openbao"


def sa_uid(namespace: str, name: str) -> str:
    """A stable ServiceAccount uid (Kubernetes' are random UUIDs; tests want them reproducible)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"serviceaccount:{namespace}/{name}"))


def sa_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


class SAKeys:
    """The RSA key the "API server" signs ServiceAccount tokens with."""

    def __init__(self, private_key: rsa.RSAPrivateKey | None = None, kid: str = "test-sa-key"):
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid

    @classmethod
    def load(cls, pem: bytes) -> "SAKeys":
        return cls(serialization.load_pem_private_key(pem, password=None))

    @property
    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(
        self,
        namespace: str,
        name: str,
        *,
        aud: str | list[str] | None = DEFAULT_AUDIENCE,
        uid: str | None = None,
        iss: str = DEFAULT_ISSUER,
        ttl: int = 3600,
        now: float | None = None,
        pod: str | None = None,
        extra: dict | None = None,
    ) -> str:
        """A projected-SA-style JWT. ``ttl`` may be negative (expired token)."""
        now = int(time.time() if now is None else now)
        uid = uid or sa_uid(namespace, name)
        claims: dict = {
            "iss": iss,
            "sub": sa_username(namespace, name),
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            },
        }
        if aud is not None:
            claims["aud"] = [aud] if isinstance(aud, str) else list(aud)
        if pod:
            claims["kubernetes.io"]["pod"] = {"name": pod, "uid": str(uuid.uuid4())}
        claims.update(extra or {})
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def verify(self, token: str, *, leeway: int = 0) -> dict:
        """Claims of a token this key signed (signature and exp/nbf/iat checked, aud not)."""
        return jwt.decode(
            token,
            self.private_key.public_key(),
            algorithms=["RS256"],
            options={"verify_aud": False, "require": ["exp", "iat", "sub"]},
            leeway=leeway,
        )


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description="mint a projected-ServiceAccount-style JWT")
    p.add_argument("--key", required=True, help="PEM RSA private key (created when missing)")
    p.add_argument("--public-key-out", help="also write the public key PEM here")
    p.add_argument("--namespace", default="payments")
    p.add_argument("--name", default="bootstrapper")
    p.add_argument("--aud", default=DEFAULT_AUDIENCE)
    p.add_argument("--ttl", type=int, default=3600)
    a = p.parse_args(argv)
    key_path = pathlib.Path(a.key)
    if key_path.exists():
        keys = SAKeys.load(key_path.read_bytes())
    else:
        keys = SAKeys()
        key_path.write_bytes(keys.private_pem)
        key_path.chmod(0o600)
    if a.public_key_out:
        pathlib.Path(a.public_key_out).write_bytes(keys.public_pem)
    sys.stdout.write(keys.mint(a.namespace, a.name, aud=a.aud, ttl=a.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
