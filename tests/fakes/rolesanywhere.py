#!/usr/bin/env python3
"""A fake IAM Roles Anywhere ``CreateSession`` endpoint that verifies every request on its own.

Written from ``docs/rolesanywhere-protocol.md`` (the project's wire-protocol contract) with
nothing but the standard library and ``cryptography``; it never calls the product. The tests use
it as an oracle: a request is only answered with credentials when it is what the real service
would accept, and every rejection records the precise reason so a test can assert *why*.

Contract
========

``FakeRolesAnywhere(trust_anchors, region="us-east-1", host="127.0.0.1", port=0,
accept_role_session_name=False, max_skew=300, now=None)``

* ``trust_anchors``: PEM bytes (one or more certificates each), DER bytes or
  ``x509.Certificate`` objects. A trust anchor may be a root or an intermediate CA.
* ``now``: ``None`` (wall clock), a fixed ``datetime`` or a callable returning one; used for the
  clock-skew check, certificate validity and credential expiry.
* ``.start()`` / ``.stop()`` (also a context manager), ``.url`` (``http://HOST:PORT``).
* ``.requests``: snapshot list of :class:`RequestRecord` (a dict that also allows attribute
  access) for every non-control request, in arrival order.
* ``.issued``: the ``credentials`` objects handed out, in order; ``.count``: how many sessions
  were created (= ``len(issued)``).
* ``.fail_next(n, status, code, message, retry_after=None)``: answer the next ``n`` session
  requests with this error (the request is still verified and recorded, verdict ``injected``).
* ``.set_lifetime(seconds)``: expiration = now + min(durationSeconds, seconds); ``None`` resets
  to the default (= durationSeconds).
* ``.accept_role_session_name`` may be changed at any time.
* ``.require_uri_san`` (``None`` by default; may be changed at any time): the URI that the
  leaf's subjectAltName must hold, as a trust policy condition on ``aws:PrincipalTag/x509SAN/URI``
  binds a SPIFFE ID; a leaf without it is refused (``403 AccessDeniedException``, reason
  naming the URIs it has). Each record's ``uri_sans`` lists the leaf's SAN URIs.

Verification of ``POST <any prefix>/sessions`` (in this order; the first failure wins):

1. ``Authorization`` = ``AWS4-X509-{RSA-SHA256,ECDSA-SHA256,MLDSA} Credential=<decimal serial>/<yyyymmdd>/
   <region>/rolesanywhere/aws4_request, SignedHeaders=<a;b;c>, Signature=<lower hex>``, with
   ``", "`` separators exactly.
2. SignedHeaders sorted, unique, containing ``content-type;host;x-amz-date;x-amz-x509`` and
   ``x-amz-x509-chain`` when that header is sent; every ``x-amz-*`` header sent is signed.
3. ``X-Amz-Date`` is ``YYYYMMDDTHHMMSSZ``, within ``max_skew`` seconds of now; the scope date is
   its date; the scope region is the configured region.
4. ``X-Amz-X509`` / ``X-Amz-X509-Chain``: strict standard base64 DER, chain of at most 5.
5. Credential serial = leaf serial in decimal; algorithm name matches the key type (RSA, EC
   P-256/P-384, ML-DSA-44/65/87 only).
6. The canonical request is rebuilt from the wire (method, raw path, query re-encoded per
   RFC 3986, signed header values trimmed/collapsed, SHA-256 of the exact body bytes) and the
   signature verified with the leaf key (RSA PKCS#1 v1.5 SHA-256 / ECDSA SHA-256, DER / pure
   ML-DSA (FIPS 204) over the string-to-sign bytes themselves, empty context).
7. Leaf: X.509 v3, keyUsage digitalSignature, basicConstraints CA:FALSE if present, signature
   hash SHA-256 or stronger (or a hash-free ML-DSA signature; MD5, SHA-1 and SHA-224 refused). Every cert in ``[leaf, *chain]`` is issued by the next one or by a
   trust anchor (or is a trust anchor), issuers are CA:TRUE (keyCertSign if keyUsage present,
   pathLen respected), every cert of the path is within validity; the path ends at an anchor.
8. ``Content-Type`` is exactly ``application/json``; the body is a JSON object of known fields,
   ``durationSeconds`` an int in 900..43200 (required: the product always sends it),
   ``roleSessionName`` only when accepted; ``trustAnchorArn``/``profileArn``/``roleArn`` present
   once (query or body), well formed, anchor and profile in the configured region and account.

Failures 1-7 answer ``403`` with ``X-Amzn-ErrorType: AccessDeniedException`` and a JSON
``{"message": ...}`` (``Invalid signature``, ``Untrusted Signing Certificate``, ...); body and ARN
problems answer ``400 ValidationException``, except ``roleSessionName`` which is ``403
Not authorized to set roleSessionName.``. Success answers ``201`` with the response shape of
``docs/rolesanywhere-protocol.md`` §4 and fresh random credentials.

Control API on the same server (for scripts, benchmarks and containers):
``POST /_fake/fail {"count","status","code","message"[,"retry_after"]}``,
``POST /_fake/lifetime {"seconds": int|null}``, ``POST /_fake/reset``, ``GET /_fake/stats``.

Script: ``python tests/fakes/rolesanywhere.py --listen 127.0.0.1:PORT --trust-anchor ca.pem
[--trust-anchor ...] [--region r] [--lifetime S] [--accept-role-session-name] [--max-skew S]``
serves forever and logs one line per request to stderr.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import http.server
import json
import re
import secrets
import socket
import string
import sys
import threading
import urllib.parse
import uuid
from collections import deque
from typing import Callable, Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

SERVICE = "rolesanywhere"
ALGORITHMS = {"AWS4-X509-RSA-SHA256": "rsa", "AWS4-X509-ECDSA-SHA256": "ec",
              "AWS4-X509-MLDSA": "mldsa"}
REQUIRED_SIGNED = ("content-type", "host", "x-amz-date", "x-amz-x509")
MAX_CHAIN = 5
MIN_DURATION, MAX_DURATION = 900, 43200
BODY_FIELDS = {"durationSeconds", "roleSessionName", "sessionName", "instanceProperties",
               "profileArn", "roleArn", "trustAnchorArn"}
ARN_FIELDS = ("trustAnchorArn", "profileArn", "roleArn")
STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
MLDSA_PUBLIC_KEYS = (mldsa.MLDSA44PublicKey, mldsa.MLDSA65PublicKey, mldsa.MLDSA87PublicKey)
# Signature algorithms without a separate hash that the service accepts on a leaf: ML-DSA-44/65/87.
HASH_FREE_SIGNATURES = {"2.16.840.1.101.3.4.3.17", "2.16.840.1.101.3.4.3.18",
                        "2.16.840.1.101.3.4.3.19"}

AUTH_RE = re.compile(
    r"(?P<alg>AWS4-X509-(?:RSA-SHA256|ECDSA-SHA256|MLDSA)) "
    r"Credential=(?P<serial>[^/\s,]+)/(?P<date>[^/\s,]+)/(?P<region>[^/\s,]+)/"
    r"(?P<service>[^/\s,]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^\s,]+), "
    r"Signature=(?P<sig>[0-9a-f]+)"
)
AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
PARTITION = r"aws(?:-cn|-us-gov|-iso(?:-[a-z])?)?"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ROLE_ARN_RE = re.compile(
    rf"arn:{PARTITION}:iam::(?P<account>\d{{12}}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{{1,64}}")
SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}")


def rolesanywhere_arn_re(kind: str) -> re.Pattern:
    """Pattern of a Roles Anywhere ``trust-anchor`` or ``profile`` ARN (any region)."""
    return re.compile(
        rf"arn:{PARTITION}:rolesanywhere:(?P<region>[a-z]{{2}}(?:-[a-z]+)+-\d+):"
        rf"(?P<account>\d{{12}}):{kind}/{UUID_RE}")


TA_ARN_RE = rolesanywhere_arn_re("trust-anchor")
PROFILE_ARN_RE = rolesanywhere_arn_re("profile")


# --------------------------------------------------------------------------------------------
# Canonicalisation (docs/rolesanywhere-protocol.md §2), shared with the tests' reference client.
# --------------------------------------------------------------------------------------------

def rfc3986(value: str) -> str:
    """Percent-encode everything but ``A-Za-z0-9-_.~`` with upper-case hex."""
    return urllib.parse.quote(value, safe="-_.~")


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decode a raw query string into (key, value) pairs as received (``+`` stays ``+``)."""
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        key, _, value = part.partition("=")
        pairs.append((urllib.parse.unquote(key), urllib.parse.unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Keys (then values) sorted, each re-encoded per RFC 3986."""
    encoded = sorted((rfc3986(k), rfc3986(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_header_value(value: str) -> str:
    """Trim and collapse inner runs of spaces."""
    return re.sub(r" +", " ", value.strip())


def canonical_request(method: str, path: str, query: str, headers: dict[str, str],
                      signed: list[str], body: bytes) -> str:
    """The canonical request; ``headers`` maps lower-case names to (joined) values."""
    lines = [method, path, query]
    lines += [f"{name}:{canonical_header_value(headers[name])}" for name in signed]
    lines += ["", ";".join(signed), hashlib.sha256(body).hexdigest()]
    return "\n".join(lines)


def string_to_sign(algorithm: str, amz_date: str, scope: str, creq: str) -> str:
    return "\n".join([algorithm, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])


def credential_scope(amz_date: str, region: str) -> str:
    return f"{amz_date[:8]}/{region}/{SERVICE}/aws4_request"


def key_algorithm(public_key) -> str | None:
    """The Authorization algorithm name for a leaf public key, or None if unsupported."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "AWS4-X509-RSA-SHA256"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
            public_key.curve, SUPPORTED_CURVES):
        return "AWS4-X509-ECDSA-SHA256"
    if isinstance(public_key, MLDSA_PUBLIC_KEYS):
        return "AWS4-X509-MLDSA"
    return None


def format_time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Records and rejections
# --------------------------------------------------------------------------------------------

class RequestRecord(dict):
    """One received request. Keys (also readable as attributes):

    ``time`` (datetime), ``method``, ``path`` (raw, without query), ``raw_query``, ``query``
    (list of decoded pairs), ``headers`` (lower-case name -> value, repeated joined by ``,``),
    ``body`` (bytes), ``json`` (parsed body or None), ``verdict`` (``accepted`` | ``rejected`` |
    ``injected``), ``valid`` (bool: did it pass verification, also for injected ones), ``status``,
    ``error_code``, ``message`` (sent on the wire), ``reason`` (precise rejection reason or
    None), ``canonical_request``, ``string_to_sign``, ``signed_headers`` (list), ``serial``,
    ``credentials`` (issued credentials or None).
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Reject(Exception):
    def __init__(self, reason: str, message: str | None = None, status: int = 403,
                 code: str = "AccessDeniedException"):
        super().__init__(reason)
        self.reason = reason
        self.message = message or reason
        self.status = status
        self.code = code


def _denied(reason: str, message: str = "Invalid signature") -> Reject:
    return Reject(reason, message)


def _untrusted(reason: str) -> Reject:
    return Reject(reason, "Untrusted Signing Certificate")


def _invalid(reason: str) -> Reject:
    return Reject(reason, reason, 400, "ValidationException")


# --------------------------------------------------------------------------------------------
# Certificate checks
# --------------------------------------------------------------------------------------------

def _load_pem_or_der(data) -> list[x509.Certificate]:
    if isinstance(data, x509.Certificate):
        return [data]
    if isinstance(data, str):
        data = data.encode()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def _b64_der(value: str, what: str) -> x509.Certificate:
    try:
        der = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _denied(f"{what}: not strict standard base64") from None
    if base64.b64encode(der).decode() != value:
        raise _denied(f"{what}: non-canonical base64")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise _denied(f"{what}: not a DER certificate ({e})") from None


def _ext(cert: x509.Certificate, oid_cls):
    try:
        return cert.extensions.get_extension_for_class(oid_cls).value
    except x509.ExtensionNotFound:
        return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def check_leaf(leaf: x509.Certificate) -> None:
    if leaf.version != x509.Version.v3:
        raise _untrusted(f"leaf is X.509 {leaf.version.name}, not v3")
    ku = _ext(leaf, x509.KeyUsage)
    if ku is None or not ku.digital_signature:
        raise _untrusted("leaf keyUsage lacks digitalSignature")
    bc = _ext(leaf, x509.BasicConstraints)
    if bc is not None and bc.ca:
        raise _untrusted("leaf basicConstraints CA:TRUE")
    if leaf.signature_algorithm_oid.dotted_string in HASH_FREE_SIGNATURES:
        return
    try:
        alg = leaf.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - an algorithm cryptography does not know: not SHA-256+
        alg = None
    if not isinstance(alg, STRONG_HASHES):
        raise _untrusted(f"leaf signed with {alg.name if alg else 'no hash'}, not SHA-256+")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def check_path(leaf: x509.Certificate, chain: list[x509.Certificate],
               anchors: list[x509.Certificate], now: dt.datetime) -> list[x509.Certificate]:
    """Check ``[leaf, *chain]`` against the anchors; returns the path leaf..anchor.

    Every certificate sent must be issued by the next one or by a trust anchor, or be a trust
    anchor itself (an anchor sent in the chain ends the path). The path found from the leaf is
    then checked for validity dates and issuer constraints.
    """
    by_der = {_der(a): a for a in anchors}
    certs = [leaf, *chain]

    def anchor_issuer(cert):
        return next((a for a in anchors if _issued_by(cert, a)), None)

    for i, cert in enumerate(certs):
        if (i > 0 and _der(cert) in by_der) or anchor_issuer(cert) is not None:
            continue
        if i + 1 < len(certs) and _issued_by(cert, certs[i + 1]):
            continue
        raise _untrusted(f"{cert.subject.rfc4514_string()} is issued neither by the next chain "
                         "certificate nor by a trust anchor")
    path: list[x509.Certificate] = []
    for i, cert in enumerate(certs):
        if i > 0 and _der(cert) in by_der:
            path.append(by_der[_der(cert)])
            break
        path.append(cert)
        anchor = anchor_issuer(cert)
        if anchor is not None:
            path.append(anchor)
            break
    for depth, cert in enumerate(path):
        name = cert.subject.rfc4514_string()
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise _untrusted(f"{name} outside its validity ({cert.not_valid_before_utc:%Y-%m-%d}"
                             f" .. {cert.not_valid_after_utc:%Y-%m-%d})")
        if depth == 0:
            continue
        bc = _ext(cert, x509.BasicConstraints)
        if bc is None or not bc.ca:
            raise _untrusted(f"issuer {name} is not CA:TRUE")
        if bc.path_length is not None and depth - 1 > bc.path_length:
            raise _untrusted(f"issuer {name} pathLen {bc.path_length} exceeded")
        ku = _ext(cert, x509.KeyUsage)
        if ku is not None and not ku.key_cert_sign:
            raise _untrusted(f"issuer {name} lacks keyCertSign")
    return path


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------

class FakeRolesAnywhere:
    """See the module docstring for the contract."""

    def __init__(self, trust_anchors, region: str = "us-east-1", host: str = "127.0.0.1",
                 port: int = 0, accept_role_session_name: bool = False, max_skew: int = 300,
                 now: dt.datetime | Callable[[], dt.datetime] | None = None,
                 log: Callable[[str], None] | None = None):
        self.anchors: list[x509.Certificate] = []
        for item in trust_anchors:
            self.anchors += _load_pem_or_der(item)
        if not self.anchors:
            raise ValueError("at least one trust anchor is required")
        self.region = region
        self.accept_role_session_name = accept_role_session_name
        self.require_uri_san: str | None = None
        self.max_skew = max_skew
        self._now = now
        self._log = log
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._failures: deque[dict] = deque()
        self._lifetime: int | None = None
        self.issued: list[dict] = []
        server_cls = _Server6 if ":" in host else _Server
        self._server = server_cls((host, port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> "FakeRolesAnywhere":
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-rolesanywhere", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- state and controls ------------------------------------------------------------
    def now(self) -> dt.datetime:
        if self._now is None:
            return dt.datetime.now(dt.timezone.utc)
        return self._now() if callable(self._now) else self._now

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.issued)

    def fail_next(self, n: int, status: int, code: str | None, message: str,
                  retry_after: int | None = None) -> None:
        with self._lock:
            for _ in range(n):
                self._failures.append({"status": status, "code": code, "message": message,
                                       "retry_after": retry_after})

    def set_lifetime(self, seconds: int | None) -> None:
        with self._lock:
            self._lifetime = seconds

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self.issued.clear()
            self._lifetime = None

    def stats(self) -> dict:
        with self._lock:
            last = self._requests[-1] if self._requests else None
            verdicts = [r["verdict"] for r in self._requests]
            return {
                "count": len(self.issued),
                "requests": len(self._requests),
                "accepted": verdicts.count("accepted"),
                "rejected": verdicts.count("rejected"),
                "injected": verdicts.count("injected"),
                "pending_failures": len(self._failures),
                "lifetime": self._lifetime,
                "last": None if last is None else {
                    k: last[k] for k in ("verdict", "status", "error_code", "reason")},
            }

    # ---- request handling --------------------------------------------------------------
    def handle(self, method: str, target: str, header_items: list[tuple[str, str]],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Verify one request and build the answer (status, headers, body)."""
        path, _, raw_query = target.partition("?")
        headers: dict[str, str] = {}
        for name, value in header_items:
            name = name.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        rec = RequestRecord(
            time=self.now(), method=method, path=path, raw_query=raw_query,
            query=parse_query(raw_query), headers=headers, body=body, json=None,
            verdict="rejected", valid=False, status=None, error_code=None, message=None,
            reason=None, canonical_request=None, string_to_sign=None, signed_headers=None,
            serial=None, credentials=None, uri_sans=None)
        request, result = None, None
        try:
            if not path.endswith("/sessions"):
                raise Reject(f"unknown path {path}", "Unknown operation", 404,
                             "UnknownOperationException")
            if method != "POST":
                raise Reject(f"method {method} not allowed", "Method not allowed", 405,
                             "MethodNotAllowedException")
            request = self._verify(rec)
            rec["valid"] = True
        except Reject as rej:
            rec.update(reason=rej.reason)
            result = (rej.status, rej.code, rej.message)
        with self._lock:
            injected = self._failures.popleft() if self._failures else None
            if injected is not None:
                rec.update(verdict="injected", status=injected["status"],
                           error_code=injected["code"], message=injected["message"])
                extra = {}
                if injected["retry_after"] is not None:
                    extra["Retry-After"] = str(injected["retry_after"])
                answer = _error(injected["status"], injected["code"], injected["message"], extra)
            elif request is None:
                status, code, message = result
                rec.update(status=status, error_code=code, message=message)
                answer = _error(status, code, message)
            else:
                payload = self._issue(rec, request)
                rec.update(verdict="accepted", status=201)
                answer = (201, {"Content-Type": "application/json"},
                          json.dumps(payload).encode())
            self._requests.append(rec)
        if self._log:
            self._log(f"{method} {target[:120]} -> {rec['status']} {rec['verdict']}"
                      + (f" ({rec['reason']})" if rec["reason"] else ""))
        return answer

    def _verify(self, rec: RequestRecord) -> dict:
        headers = rec["headers"]
        auth = headers.get("authorization")
        if auth is None:
            raise _denied("no Authorization header", "Missing Authentication Token")
        m = AUTH_RE.fullmatch(auth)
        if not m:
            raise _denied(f"malformed Authorization header: {auth[:200]!r}")
        alg, serial, scope_date, region = m["alg"], m["serial"], m["date"], m["region"]
        rec["serial"] = serial
        if m["service"] != SERVICE:
            raise _denied(f"credential scope service {m['service']!r}, not {SERVICE}")

        signed = m["signed"].split(";")
        rec["signed_headers"] = signed
        if signed != sorted(set(signed)):
            raise _denied(f"SignedHeaders not sorted/unique: {m['signed']}")
        missing = [h for h in REQUIRED_SIGNED if h not in signed]
        if "x-amz-x509-chain" in headers and "x-amz-x509-chain" not in signed:
            missing.append("x-amz-x509-chain")
        if missing:
            raise _denied(f"SignedHeaders lacks {', '.join(missing)}")
        absent = [h for h in signed if h not in headers]
        if absent:
            raise _denied(f"signed header(s) not sent: {', '.join(absent)}")
        unsigned = [h for h in headers if h.startswith("x-amz-") and h not in signed]
        if unsigned:
            raise _denied(f"x-amz-* header(s) sent but not signed: {', '.join(unsigned)}")

        amz_date = headers["x-amz-date"]
        if not AMZ_DATE_RE.fullmatch(amz_date):
            raise _denied(f"X-Amz-Date {amz_date!r} is not YYYYMMDDTHHMMSSZ")
        try:
            when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.timezone.utc)
        except ValueError:
            raise _denied(f"X-Amz-Date {amz_date!r} is not a date") from None
        skew = abs((self.now() - when).total_seconds())
        if skew > self.max_skew:
            raise _denied(f"X-Amz-Date {amz_date} is {skew:.0f}s from now "
                          f"(max {self.max_skew}s)", "Signature expired")
        if scope_date != amz_date[:8]:
            raise _denied(f"credential scope date {scope_date} != X-Amz-Date date "
                          f"{amz_date[:8]}")
        if region != self.region:
            raise _denied(f"credential scope region {region!r} != {self.region!r}",
                          "Credential should be scoped to a valid region.")

        leaf = _b64_der(headers["x-amz-x509"], "X-Amz-X509")
        chain = []
        if "x-amz-x509-chain" in headers:
            parts = headers["x-amz-x509-chain"].split(",")
            if len(parts) > MAX_CHAIN:
                raise _untrusted(f"X-Amz-X509-Chain has {len(parts)} certificates "
                                 f"(max {MAX_CHAIN})")
            chain = [_b64_der(p, f"X-Amz-X509-Chain[{i}]") for i, p in enumerate(parts)]
        if serial != str(leaf.serial_number):
            raise _denied(f"Credential serial {serial} != leaf serial "
                          f"{leaf.serial_number} (decimal)")
        public_key = leaf.public_key()
        expected_alg = key_algorithm(public_key)
        if expected_alg is None:
            raise _denied(f"unsupported leaf key {type(public_key).__name__}"
                          + (f" {public_key.curve.name}"
                             if isinstance(public_key, ec.EllipticCurvePublicKey) else ""))
        if alg != expected_alg:
            raise _denied(f"algorithm {alg} does not match the leaf key ({expected_alg})")

        creq = canonical_request(rec["method"], rec["path"], canonical_query(rec["query"]),
                                 headers, signed, rec["body"])
        sts = string_to_sign(alg, amz_date, credential_scope(amz_date, region), creq)
        rec.update(canonical_request=creq, string_to_sign=sts)
        try:
            signature = bytes.fromhex(m["sig"])
            if isinstance(public_key, rsa.RSAPublicKey):
                public_key.verify(signature, sts.encode(), padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(public_key, MLDSA_PUBLIC_KEYS):
                # Pure ML-DSA over the string to sign itself (no pre-hash), empty context.
                public_key.verify(signature, sts.encode())
            else:
                public_key.verify(signature, sts.encode(), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            raise _denied("signature does not verify over the rebuilt string to sign") from None

        check_leaf(leaf)
        check_path(leaf, chain, self.anchors, self.now())
        san = _ext(leaf, x509.SubjectAlternativeName)
        rec["uri_sans"] = san.get_values_for_type(x509.UniformResourceIdentifier) if san else []
        wanted = self.require_uri_san
        if wanted is not None and wanted not in rec["uri_sans"]:
            raise _denied(f"leaf x509SAN/URI {rec['uri_sans']} lacks {wanted} (trust policy)",
                          "Unable to assume role for arn: the trust policy's conditions fail")
        return self._check_body(rec, leaf)

    def _check_body(self, rec: RequestRecord, leaf: x509.Certificate) -> dict:
        ctype = rec["headers"].get("content-type")
        if ctype != "application/json":
            raise _invalid(f"Content-Type must be exactly application/json, got {ctype!r}")
        try:
            body = json.loads(rec["body"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _invalid(f"body is not JSON: {e}") from None
        rec["json"] = body
        if not isinstance(body, dict):
            raise _invalid("body is not a JSON object")
        unknown = sorted(set(body) - BODY_FIELDS)
        if unknown:
            raise _invalid(f"unknown body field(s): {', '.join(unknown)}")
        duration = body.get("durationSeconds")
        if type(duration) is not int or not MIN_DURATION <= duration <= MAX_DURATION:
            raise _invalid(f"durationSeconds must be an int in {MIN_DURATION}..{MAX_DURATION},"
                           f" got {duration!r}")
        name = body.get("roleSessionName")
        if name is not None:
            if not self.accept_role_session_name:
                raise Reject("roleSessionName sent but not accepted by the profile",
                             "Not authorized to set roleSessionName.")
            if not isinstance(name, str) or not SESSION_NAME_RE.fullmatch(name):
                raise _invalid(f"roleSessionName {name!r} is invalid")

        query: dict[str, list[str]] = {}
        for k, v in rec["query"]:
            query.setdefault(k, []).append(v)
        unknown_q = sorted(set(query) - set(ARN_FIELDS))
        if unknown_q:
            raise _invalid(f"unknown query parameter(s): {', '.join(unknown_q)}")
        arns = {}
        for field in ARN_FIELDS:
            values = query.get(field, [])
            if len(values) > 1:
                raise _invalid(f"{field} repeated in the query")
            if values and field in body:
                raise _invalid(f"{field} both in the query and in the body")
            value = values[0] if values else body.get(field)
            if not isinstance(value, str) or not value:
                raise _invalid(f"{field} missing")
            arns[field] = value
        ta = TA_ARN_RE.fullmatch(arns["trustAnchorArn"])
        if not ta:
            raise _invalid(f"trustAnchorArn {arns['trustAnchorArn']!r} is malformed")
        profile = PROFILE_ARN_RE.fullmatch(arns["profileArn"])
        if not profile:
            raise _invalid(f"profileArn {arns['profileArn']!r} is malformed")
        if not ROLE_ARN_RE.fullmatch(arns["roleArn"]):
            raise _invalid(f"roleArn {arns['roleArn']!r} is malformed")
        for field, match in (("trustAnchorArn", ta), ("profileArn", profile)):
            if match["region"] != self.region:
                raise _invalid(f"{field} region {match['region']} != {self.region}")
        if ta["account"] != profile["account"]:
            raise _invalid("trustAnchorArn and profileArn are in different accounts")
        return {"duration": duration, "role_session_name": name, "arns": arns,
                "account": ta["account"], "leaf": leaf}

    def _issue(self, rec: RequestRecord, req: dict) -> dict:
        """The success payload (docs/rolesanywhere-protocol.md §4); called with the lock held."""
        now = self.now()
        lifetime = req["duration"] if self._lifetime is None else min(req["duration"],
                                                                      self._lifetime)
        upper = string.ascii_uppercase + string.digits
        creds = {
            "accessKeyId": "ASIA" + "".join(secrets.choice(upper) for _ in range(16)),
            "secretAccessKey": "".join(secrets.choice(string.ascii_letters + string.digits
                                                      + "+/") for _ in range(40)),
            "sessionToken": base64.b64encode(secrets.token_bytes(300)).decode(),
            "expiration": format_time(now + dt.timedelta(seconds=lifetime)),
        }
        leaf = req["leaf"]
        session = req["role_session_name"] or format(leaf.serial_number, "x")
        role_arn = req["arns"]["roleArn"]
        role_name = role_arn.rsplit("/", 1)[1]
        cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        rec["credentials"] = creds
        self.issued.append(creds)
        return {
            "credentialSet": [{
                "assumedRoleUser": {
                    "arn": f"arn:aws:sts::{req['account']}:assumed-role/{role_name}/{session}",
                    "assumedRoleId": "AROA" + "".join(secrets.choice(upper) for _ in range(17))
                                     + f":{session}",
                },
                "credentials": creds,
                "packedPolicySize": 0,
                "roleArn": role_arn,
                "sourceIdentity": f"CN={cns[0].value}" if cns else "",
            }],
            "subjectArn": f"arn:aws:rolesanywhere:{self.region}:{req['account']}:subject/"
                          f"{uuid.uuid4()}",
        }

    def control(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        """The ``/_fake/`` control API."""
        try:
            args = json.loads(body or b"{}")
        except json.JSONDecodeError as e:
            return 400, {"error": f"bad JSON: {e}"}
        if (method, path) == ("GET", "/_fake/stats"):
            return 200, self.stats()
        if (method, path) == ("POST", "/_fake/fail"):
            self.fail_next(int(args.get("count", 1)), int(args["status"]), args.get("code"),
                           args.get("message", ""), args.get("retry_after"))
            return 200, self.stats()
        if (method, path) == ("POST", "/_fake/lifetime"):
            seconds = args.get("seconds")
            self.set_lifetime(None if seconds is None else int(seconds))
            return 200, self.stats()
        if (method, path) == ("POST", "/_fake/reset"):
            self.reset()
            return 200, self.stats()
        return 404, {"error": f"no control endpoint {method} {path}"}


def _error(status: int, code: str | None, message: str,
           extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", **(extra or {})}
    if code:
        headers["X-Amzn-ErrorType"] = code
    return status, headers, json.dumps({"message": message}).encode()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeRolesAnywhere


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        headers = {"x-amzn-RequestId": str(uuid.uuid4()), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self) -> None:
        body = self._read_body()
        fake = self.server.fake
        if self.path.startswith("/_fake/"):
            status, payload = fake.control(self.command, self.path.partition("?")[0], body)
            self._send(status, {"Content-Type": "application/json"},
                       json.dumps(payload).encode())
            return
        self._send(*fake.handle(self.command, self.path, list(self.headers.items()), body))

    do_POST = do_GET = do_PUT = do_DELETE = _dispatch

    def log_message(self, format, *args):  # noqa: A002 - logging is done by the fake
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT")
    parser.add_argument("--trust-anchor", action="append", required=True, metavar="PEM")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--lifetime", type=int, default=None)
    parser.add_argument("--max-skew", type=int, default=300)
    parser.add_argument("--accept-role-session-name", action="store_true")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    anchors = []
    for path in args.trust_anchor:
        with open(path, "rb") as f:
            anchors.append(f.read())

    def log(line: str) -> None:
        print(f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ} {line}", file=sys.stderr,
              flush=True)

    fake = FakeRolesAnywhere(anchors, region=args.region, host=host.strip("[]") or "127.0.0.1",
                             port=int(port), accept_role_session_name=args.accept_role_session_name,
                             max_skew=args.max_skew, log=log)
    fake.set_lifetime(args.lifetime)
    log(f"fake Roles Anywhere listening on {fake.url} (region {args.region})")
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
