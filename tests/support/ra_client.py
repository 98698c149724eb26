"""A minimal Python CreateSession client used to exercise the fake endpoint directly.

It signs with the canonicalisation helpers of ``fakes.rolesanywhere`` (those are pinned by the
known-answer vectors in ``tests/data/kat``) and sends the exact bytes with ``http.client`` so
tests control every header. Each knob exists to produce one kind of bad request.

* ``sign_create_session(leaf, key, chain=(), ...)`` -> :class:`SignedRequest`
* ``send(url, method, target, headers, body)`` -> :class:`Response`
"""
from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import urllib.parse
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

from fakes.rolesanywhere import (canonical_query, canonical_request, credential_scope,
                                 key_algorithm, rfc3986, string_to_sign)


@dataclass
class SignedRequest:
    method: str
    target: str                       # raw path + "?" + query, as sent
    headers: list[tuple[str, str]]    # as sent (Authorization last)
    body: bytes
    canonical_request: str
    string_to_sign: str

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def with_header(self, name: str, value: str | None) -> "SignedRequest":
        """A copy with one header replaced (or removed when ``value`` is None)."""
        headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            headers.append((name, value))
        return SignedRequest(self.method, self.target, headers, self.body,
                             self.canonical_request, self.string_to_sign)


@dataclass
class Response:
    status: int
    headers: dict[str, str]   # lower-case names
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


def amz_date(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def b64(cert) -> str:
    if isinstance(cert, x509.Certificate):
        cert = cert.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(cert).decode()


def _sign(key, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, (ed25519.Ed25519PrivateKey, mldsa.MLDSA44PrivateKey,
                        mldsa.MLDSA65PrivateKey, mldsa.MLDSA87PrivateKey)):
        return key.sign(data)
    raise TypeError(type(key).__name__)


def sign_create_session(leaf: x509.Certificate, key, chain=(), *, arns: dict[str, str],
                        arns_in: str = "query", duration: int | None = 3600,
                        body_extra: dict | None = None, body: bytes | None = None,
                        host: str = "rolesanywhere.us-east-1.amazonaws.com",
                        region: str = "us-east-1", when: dt.datetime | None = None,
                        path: str = "/sessions", signed_path: str | None = None,
                        content_type: str = "application/json",
                        extra_headers: dict[str, str] | None = None,
                        signed_headers: list[str] | None = None,
                        algorithm: str | None = None, serial: str | None = None,
                        scope_region: str | None = None, scope_date: str | None = None
                        ) -> SignedRequest:
    """Build and sign a CreateSession request.

    ``arns`` maps ``trustAnchorArn``/``profileArn``/``roleArn`` to values, sent in the query
    (``arns_in="query"``, like the reference helper) or the JSON body (``"body"``). Overrides:
    ``signed_path`` (sign a path other than the one sent), ``signed_headers`` (names listed and
    signed), ``algorithm``, ``serial``, ``scope_region``, ``scope_date`` (Credential parts).
    """
    date = amz_date(when or dt.datetime.now(dt.timezone.utc))
    if body is None:
        doc = {} if duration is None else {"durationSeconds": duration}
        if arns_in == "body":
            doc.update(arns)
        doc.update(body_extra or {})
        body = json.dumps(doc, separators=(",", ":")).encode()
    query = sorted(arns.items()) if arns_in == "query" else []
    raw_query = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in query)
    headers = {"content-type": content_type, "host": host, "x-amz-date": date,
               "x-amz-x509": b64(leaf)}
    if chain:
        headers["x-amz-x509-chain"] = ",".join(b64(c) for c in chain)
    headers.update({k.lower(): v for k, v in (extra_headers or {}).items()})
    names = signed_headers or sorted(headers)
    values = {h: headers.get(h, "") for h in names}
    algorithm = algorithm or key_algorithm(leaf.public_key()) or "AWS4-X509-ECDSA-SHA256"
    creq = canonical_request("POST", signed_path or path, canonical_query(query), values, names,
                             body)
    scope = credential_scope(date, scope_region or region)
    if scope_date:
        scope = scope_date + scope[8:]
    sts = string_to_sign(algorithm, date, scope, creq)
    signature = _sign(key, sts.encode()).hex()
    auth = (f"{algorithm} Credential={serial or leaf.serial_number}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    sent = [(k, v) for k, v in headers.items()] + [("authorization", auth)]
    target = path + (f"?{raw_query}" if raw_query else "")
    return SignedRequest("POST", target, sent, body, creq, sts)


def send(url: str, req: SignedRequest | None = None, *, method: str | None = None,
         target: str | None = None, headers=None, body: bytes | None = None,
         timeout: float = 10) -> Response:
    """Send a request byte for byte (``Host`` as given) and return the response."""
    if req is not None:
        method, target, headers, body = req.method, req.target, req.headers, req.body
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers or []:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or b"")
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
