"""The fake Roles Anywhere endpoint is a real verifier, not an accept-all.

1. It accepts the two known-answer vectors (``tests/data/kat``) byte for byte, with its clock
   pinned to the vectors' date, rebuilding exactly the published canonical request and string to
   sign, and rejects every single-point tampering of them for the right reason.
2. With the test PKI, it accepts correctly signed RSA / P-256 / P-384 requests with and without
   an intermediate, and rejects each violation of the trust model and of the request rules.
3. Its controls (``fail_next``, ``set_lifetime``, the ``/_fake/`` HTTP API) and its script mode
   work as documented.

The KAT leaf is issued by the KAT intermediate whose root is not shipped, so the KAT tests trust
the intermediate itself as the trust anchor (a Roles Anywhere anchor may be an intermediate CA):
chain verification stays on.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import pathlib
import re
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fakes.rolesanywhere import FakeRolesAnywhere
from support.fake_ra import ACCOUNT, PROFILE_ARN, REGION, ROLE_ARN, TA_ARN
from support.pki import make_ca, make_intermediate, make_leaf, write_cert
from support.ra_client import b64, send, sign_create_session

KAT = pathlib.Path(__file__).parent / "data" / "kat"
KAT_NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
KAT_HOST = "rolesanywhere.us-east-1.amazonaws.com"
ARNS = {"trustAnchorArn": TA_ARN, "profileArn": PROFILE_ARN, "roleArn": ROLE_ARN}
FAKE_SCRIPT = pathlib.Path(__file__).parent / "fakes" / "rolesanywhere.py"


# ---- helpers ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Kat:
    name: str
    authorization: str
    body: bytes
    query: str
    chain: str | None
    canonical_request: str
    string_to_sign: str

    def headers(self, **override) -> list[tuple[str, str]]:
        headers = {"Content-Type": "application/json", "Host": KAT_HOST,
                   "X-Amz-Date": "20240102T030405Z",
                   "X-Amz-X509": (KAT / "cert.der.b64").read_text().strip()}
        if self.chain:
            headers["X-Amz-X509-Chain"] = self.chain
        headers["Authorization"] = self.authorization
        headers.update(override)
        return [(k, v) for k, v in headers.items() if v is not None]

    def target(self, query: str | None = None) -> str:
        query = self.query if query is None else query
        return "/sessions" + (f"?{query}" if query else "")


def load_kat(name: str) -> Kat:
    vec = json.loads((KAT / "vectors.json").read_text())[name]
    chain = (KAT / "subca.der.b64").read_text().strip() if name.startswith("B") else None
    return Kat(name, vec["authorization"], vec["body"].encode(), vec["query"], chain,
               (KAT / f"{name}.canonical-request.txt").read_text(),
               (KAT / f"{name}.string-to-sign.txt").read_text())


def kat_anchor() -> bytes:
    der = base64.b64decode((KAT / "subca.der.b64").read_text())
    return b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + \
        b"-----END CERTIFICATE-----\n"


def post_kat(fake, kat: Kat, *, headers=None, target=None, body=None):
    return send(fake.url, method="POST", target=target or kat.target(),
                headers=headers or kat.headers(), body=kat.body if body is None else body)


def assert_rejected(resp, fake, reason: str, status=403, code="AccessDeniedException",
                    message: str | None = None):
    """The fake rejected the last request with this status/code and a reason matching ``reason``."""
    rec = fake.requests[-1]
    assert resp.status == status, (resp.status, rec.reason)
    assert resp.headers["x-amzn-errortype"] == code
    assert rec.verdict == "rejected" and rec.valid is False
    assert re.search(reason, rec.reason), rec.reason
    if message is not None:
        assert resp.json == {"message": message}
    assert fake.count == 0 or rec.credentials is None


def assert_accepted(resp, fake):
    rec = fake.requests[-1]
    assert resp.status == 201, (resp.status, rec.reason)
    assert rec.verdict == "accepted" and rec.valid is True and rec.reason is None
    return rec


@pytest.fixture
def kat_fake():
    """A fake trusting the KAT intermediate, its clock pinned to the vectors' date."""
    with FakeRolesAnywhere([kat_anchor()], now=KAT_NOW) as fake:
        yield fake


@pytest.fixture(scope="module")
def other_pki():
    """A second, unrelated CA with a leaf."""
    ca = make_ca("unrelated root")
    return ca, make_leaf(ca, key="p256")


def signed(leaf, chain=(), **kw):
    return sign_create_session(leaf.cert, leaf.key, [c.cert for c in chain], arns=ARNS, **kw)


# ---- 1. known-answer vectors ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["A-query-arns", "B-body-arns-chain"])
def test_kat_vector_accepted_with_published_canonical_request(kat_fake, name):
    kat = load_kat(name)
    resp = post_kat(kat_fake, kat)
    rec = assert_accepted(resp, kat_fake)
    assert rec.canonical_request == kat.canonical_request
    assert rec.string_to_sign == kat.string_to_sign
    creds = resp.json["credentialSet"][0]["credentials"]
    assert creds == rec.credentials == kat_fake.issued[-1]
    assert creds["expiration"] == "2024-01-02T04:04:05Z"
    assert kat_fake.count == 1


def _flip_signature(auth: str) -> str:
    head, sig = auth.rsplit("Signature=", 1)
    return f"{head}Signature={int(sig[:2], 16) ^ 0x01:02x}{sig[2:]}"


def test_kat_flipped_signature_byte(kat_fake):
    kat = load_kat("A-query-arns")
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=_flip_signature(
        kat.authorization)))
    assert_rejected(resp, kat_fake, "signature does not verify", message="Invalid signature")


def test_kat_changed_body(kat_fake):
    kat = load_kat("A-query-arns")
    resp = post_kat(kat_fake, kat, body=b'{"durationSeconds":3601}')
    assert_rejected(resp, kat_fake, "signature does not verify", message="Invalid signature")


def test_kat_changed_body_arn(kat_fake):
    kat = load_kat("B-body-arns-chain")
    resp = post_kat(kat_fake, kat, body=kat.body.replace(b"ExampleRole", b"ExampleRolf"))
    assert_rejected(resp, kat_fake, "signature does not verify")


def test_kat_changed_query_value(kat_fake):
    kat = load_kat("A-query-arns")
    resp = post_kat(kat_fake, kat, target=kat.target(kat.query.replace("ExampleRole",
                                                                      "ExampleRolf")))
    assert_rejected(resp, kat_fake, "signature does not verify")


def test_kat_query_reordered_and_lowercase_escapes_still_verify(kat_fake):
    """The canonical query is rebuilt from the decoded wire values, not copied."""
    kat = load_kat("A-query-arns")
    parts = kat.query.split("&")
    query = "&".join(reversed(parts)).replace("%3A", "%3a")
    assert_accepted(post_kat(kat_fake, kat, target=kat.target(query)), kat_fake)


def test_kat_wrong_serial_in_credential(kat_fake):
    kat = load_kat("A-query-arns")
    serial = "337562787801933536189724934726614584366112857655"
    auth = kat.authorization.replace(serial, str(int(serial) + 1))
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "Credential serial .* != leaf serial")


def test_kat_hex_serial_in_credential(kat_fake):
    kat = load_kat("A-query-arns")
    serial = "337562787801933536189724934726614584366112857655"
    auth = kat.authorization.replace(serial, format(int(serial), "x"))
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "Credential serial")


def test_kat_wrong_region_scope(kat_fake):
    kat = load_kat("A-query-arns")
    auth = kat.authorization.replace("/us-east-1/", "/us-west-2/")
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "region 'us-west-2' != 'us-east-1'")


def test_kat_rejected_by_fake_in_other_region():
    kat = load_kat("A-query-arns")
    with FakeRolesAnywhere([kat_anchor()], region="eu-west-1", now=KAT_NOW) as fake:
        assert_rejected(post_kat(fake, kat), fake, "region 'us-east-1' != 'eu-west-1'")


@pytest.mark.parametrize("offset, ok", [(300, True), (-300, True), (301, False), (-301, False),
                                        (86400, False)])
def test_kat_clock_skew(offset, ok):
    kat = load_kat("A-query-arns")
    with FakeRolesAnywhere([kat_anchor()], now=KAT_NOW + dt.timedelta(seconds=offset)) as fake:
        resp = post_kat(fake, kat)
        if ok:
            assert_accepted(resp, fake)
        else:
            assert_rejected(resp, fake, r"X-Amz-Date 20240102T030405Z is \d+s from now",
                            message="Signature expired")


def test_kat_scope_date_differs_from_amz_date(kat_fake):
    kat = load_kat("A-query-arns")
    auth = kat.authorization.replace("/20240102/", "/20240101/")
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "scope date 20240101 != X-Amz-Date date 20240102")


def test_kat_leaf_not_chaining_to_anchor(pki):
    kat = load_kat("B-body-arns-chain")
    with FakeRolesAnywhere([pki.root.cert_pem], now=KAT_NOW) as fake:
        assert_rejected(post_kat(fake, kat), fake, "issued neither by the next chain",
                        message="Untrusted Signing Certificate")


def test_kat_missing_signed_header(kat_fake):
    kat = load_kat("A-query-arns")
    auth = kat.authorization.replace(";x-amz-x509,", ",")
    assert "SignedHeaders=content-type;host;x-amz-date, " in auth
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "SignedHeaders lacks x-amz-x509")


def test_kat_chain_header_not_signed(kat_fake):
    kat = load_kat("B-body-arns-chain")
    auth = kat.authorization.replace(";x-amz-x509-chain,", ",")
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "SignedHeaders lacks x-amz-x509-chain")


def test_kat_signed_header_not_sent(kat_fake):
    kat = load_kat("A-query-arns")
    resp = post_kat(kat_fake, kat, headers=kat.headers(**{"Content-Type": None}))
    assert_rejected(resp, kat_fake, "signed header\\(s\\) not sent: content-type")


@pytest.mark.parametrize("mangle", [
    lambda a: a.replace(", SignedHeaders", ",SignedHeaders"),
    lambda a: a.replace(", Signature", ",Signature"),
    lambda a: a[:a.index("Signature=") + 10] + a[a.index("Signature=") + 10:].upper(),
    lambda a: a.replace("AWS4-X509-RSA-SHA256", "AWS4-HMAC-SHA256"),
    lambda a: a.replace("/rolesanywhere/", "/sts/"),
    lambda a: a.replace(", SignedHeaders", ",  SignedHeaders"),
    lambda a: a.replace("Credential=", "Credential = "),
], ids=["no-space-1", "no-space-2", "upper-hex", "hmac", "service", "double-space", "spaced-eq"])
def test_kat_malformed_authorization(kat_fake, mangle):
    kat = load_kat("A-query-arns")
    auth = mangle(kat.authorization)
    assert auth != kat.authorization
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "malformed Authorization|service 'sts'")


def test_kat_algorithm_does_not_match_key(kat_fake):
    kat = load_kat("A-query-arns")
    auth = kat.authorization.replace("AWS4-X509-RSA-SHA256", "AWS4-X509-ECDSA-SHA256")
    resp = post_kat(kat_fake, kat, headers=kat.headers(Authorization=auth))
    assert_rejected(resp, kat_fake, "does not match the leaf key")


def test_kat_unsigned_amz_header(kat_fake):
    kat = load_kat("A-query-arns")
    resp = post_kat(kat_fake, kat, headers=kat.headers(**{"X-Amz-Security-Token": "x"}))
    assert_rejected(resp, kat_fake, "not signed: x-amz-security-token")


def test_kat_charset_content_type(kat_fake):
    """Content-Type is signed, so changing it already breaks the signature."""
    kat = load_kat("A-query-arns")
    resp = post_kat(kat_fake, kat, headers=kat.headers(**{
        "Content-Type": "application/json; charset=utf-8"}))
    assert_rejected(resp, kat_fake, "signature does not verify")


@pytest.mark.parametrize("mangle", [
    lambda c: c + "==",
    lambda c: c[:64] + " " + c[64:],
    lambda c: c.replace("+", "-").replace("/", "_"),
], ids=["extra-padding", "inner-space", "urlsafe"])
def test_kat_bad_base64_certificate(kat_fake, mangle):
    kat = load_kat("A-query-arns")
    cert = (KAT / "cert.der.b64").read_text().strip()
    assert mangle(cert) != cert
    resp = post_kat(kat_fake, kat, headers=kat.headers(**{"X-Amz-X509": mangle(cert)}))
    assert_rejected(resp, kat_fake, "X-Amz-X509: (not strict standard|non-canonical) base64")


# ---- 2. own PKI: accepted requests ------------------------------------------------------------

@pytest.fixture
def fake(pki):
    with FakeRolesAnywhere(pki.trust_anchors) as fake:
        yield fake


ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.mark.parametrize("via", [False, True], ids=["direct", "intermediate"])
@pytest.mark.parametrize("key", ["rsa2048", "p256", "p384"])
@pytest.mark.parametrize("arns_in", ["query", "body"])
def test_accepts_signed_request(pki, fake, key, via, arns_in):
    files = pki.leaf(key, via_intermediate=via)
    req = signed(files.leaf, files.chain, arns_in=arns_in, host=fake.url[7:])
    resp = send(fake.url, req)
    rec = assert_accepted(resp, fake)
    assert rec.canonical_request == req.canonical_request
    assert rec.signed_headers == (["content-type", "host", "x-amz-date", "x-amz-x509"]
                                  + (["x-amz-x509-chain"] if via else []))
    assert resp.headers["content-type"] == "application/json"
    doc = resp.json
    entry = doc["credentialSet"][0]
    creds = entry["credentials"]
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", creds["accessKeyId"])
    assert len(creds["secretAccessKey"]) == 40
    assert len(creds["sessionToken"]) > 100
    assert ISO_Z.fullmatch(creds["expiration"])
    expiry = dt.datetime.strptime(creds["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc)
    remaining = (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 3590 <= remaining <= 3600
    assert entry["roleArn"] == ROLE_ARN
    assert entry["assumedRoleUser"]["arn"] == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/ExampleRole/{files.serial:x}")
    assert entry["sourceIdentity"] == "CN=workload.test.invalid"
    assert doc["subjectArn"].startswith(f"arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:subject/")
    assert fake.count == 1 and fake.issued == [creds]


def test_fresh_credentials_each_time(pki, fake):
    files = pki.leaf("p256")
    a = send(fake.url, signed(files.leaf)).json["credentialSet"][0]["credentials"]
    b = send(fake.url, signed(files.leaf)).json["credentialSet"][0]["credentials"]
    assert a["accessKeyId"] != b["accessKeyId"] and a["secretAccessKey"] != b["secretAccessKey"]
    assert fake.count == 2


def test_path_prefix_is_signed_as_sent(pki, fake):
    files = pki.leaf("p256")
    assert_accepted(send(fake.url, signed(files.leaf, path="/ra/v1/sessions")), fake)
    resp = send(fake.url, signed(files.leaf, path="/ra/v1/sessions", signed_path="/sessions"))
    assert_rejected(resp, fake, "signature does not verify")


def test_unknown_path(pki, fake):
    resp = send(fake.url, signed(pki.leaf("p256").leaf, path="/session"))
    assert_rejected(resp, fake, "unknown path", status=404, code="UnknownOperationException")


def test_p384_signature_is_over_sha256_prehash(pki, fake):
    """A P-384 signature made over SHA-384 (RustCrypto's default) must be refused."""
    files = pki.leaf("p384")
    req = signed(files.leaf)
    sig = files.leaf.key.sign(req.string_to_sign.encode(), ec.ECDSA(hashes.SHA384())).hex()
    auth = re.sub("Signature=[0-9a-f]+", f"Signature={sig}", req.header("authorization"))
    assert_rejected(send(fake.url, req.with_header("Authorization", auth)), fake,
                    "signature does not verify")


def test_ecdsa_raw_signature_refused(pki, fake):
    """The ECDSA signature must be DER, not the fixed-size r||s form."""
    files = pki.leaf("p256")
    req = signed(files.leaf)
    der = bytes.fromhex(req.header("authorization").rsplit("Signature=", 1)[1])
    r, s = decode_dss_signature(der)
    raw = (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()
    auth = re.sub("Signature=[0-9a-f]+", f"Signature={raw}", req.header("authorization"))
    assert_rejected(send(fake.url, req.with_header("Authorization", auth)), fake,
                    "signature does not verify")


def test_basic_constraints_may_be_absent(pki, fake):
    files = pki.issue("p256", basic_constraints=False)
    assert_accepted(send(fake.url, signed(files.leaf)), fake)


def test_anchor_sent_in_chain_is_tolerated(pki, fake):
    files = pki.leaf("p256", via_intermediate=True)
    assert_accepted(send(fake.url, signed(files.leaf, [*files.chain, pki.root])), fake)


def test_intermediate_as_trust_anchor(pki):
    files = pki.leaf("rsa2048", via_intermediate=True)
    with FakeRolesAnywhere([pki.intermediate.cert_pem]) as fake:
        assert_accepted(send(fake.url, signed(files.leaf)), fake)
        assert_accepted(send(fake.url, signed(files.leaf, files.chain)), fake)


def test_several_trust_anchors_in_one_bundle(pki, other_pki):
    ca, leaf = other_pki
    with FakeRolesAnywhere([pki.root.cert_pem + ca.cert_pem]) as fake:
        assert_accepted(send(fake.url, signed(leaf)), fake)
        assert_accepted(send(fake.url, signed(pki.leaf("p256").leaf)), fake)


# ---- 2. own PKI: rejected requests ------------------------------------------------------------

def test_leaf_from_other_ca(fake, other_pki):
    _, leaf = other_pki
    assert_rejected(send(fake.url, signed(leaf)), fake, "issued neither",
                    message="Untrusted Signing Certificate")


def test_intermediate_missing_from_chain(pki, fake):
    files = pki.leaf("p256", via_intermediate=True)
    assert_rejected(send(fake.url, signed(files.leaf)), fake, "issued neither",
                    message="Untrusted Signing Certificate")


def test_chain_in_wrong_order(pki, fake):
    root2 = pki.root
    inter2 = make_intermediate(root2, "second intermediate", path_length=1)
    inter3 = make_intermediate(inter2, "third intermediate")
    leaf = make_leaf(inter3, key="p256")
    assert_accepted(send(fake.url, signed(leaf, [inter3, inter2])), fake)
    assert_rejected(send(fake.url, signed(leaf, [inter2, inter3])), fake, "issued neither")


def test_unrelated_extra_chain_certificate(pki, fake, other_pki):
    ca, _ = other_pki
    files = pki.leaf("p256", via_intermediate=True)
    resp = send(fake.url, signed(files.leaf, [*files.chain, ca]))
    assert_rejected(resp, fake, "unrelated root.* issued neither")


def test_chain_longer_than_five(pki, fake):
    files = pki.leaf("p256", via_intermediate=True)
    resp = send(fake.url, signed(files.leaf, [pki.intermediate] * 6))
    assert_rejected(resp, fake, "6 certificates \\(max 5\\)")


def test_path_length_constraint(pki, fake):
    below = make_intermediate(pki.intermediate, "too deep")  # intermediate has pathLen 0
    leaf = make_leaf(below, key="p256")
    assert_rejected(send(fake.url, signed(leaf, [below, pki.intermediate])), fake,
                    "pathLen 0 exceeded")


def test_issuer_not_a_ca(pki, fake):
    files = pki.leaf("p256")
    leaf = make_leaf(files.leaf, key="p256")  # issued by an end-entity certificate
    assert_rejected(send(fake.url, signed(leaf, [files.leaf])), fake, "is not CA:TRUE")


@pytest.mark.parametrize("options, reason", [
    ({"v1": True}, "X.509 v1, not v3"),
    ({"key_usage_digital_signature": False}, "keyUsage lacks digitalSignature"),
    ({"ca": True}, "basicConstraints CA:TRUE"),
    ({"days_valid": 1, "not_before": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)},
     "outside its validity \\(2020-01-01 .. 2020-01-02\\)"),
    ({"not_before": dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)},
     "outside its validity"),
], ids=["v1", "no-digitalSignature", "ca-true", "expired", "not-yet-valid"])
def test_leaf_rules(pki, fake, options, reason):
    files = pki.issue("p256", **options)
    assert_rejected(send(fake.url, signed(files.leaf)), fake, reason,
                    message="Untrusted Signing Certificate")


def test_sha1_signed_leaf():
    ca = make_ca("rsa root", key="rsa2048")
    leaf = make_leaf(ca, key="p256", hash_alg="sha1")
    with FakeRolesAnywhere([ca.cert_pem]) as fake:
        assert_rejected(send(fake.url, signed(leaf)), fake, "signed with sha1, not SHA-256",
                        message="Untrusted Signing Certificate")


def test_sha224_signed_leaf(pki, fake):
    leaf = make_leaf(pki.root, key="p256", hash_alg="sha224")
    assert_rejected(send(fake.url, signed(leaf)), fake, "signed with sha224, not SHA-256",
                    message="Untrusted Signing Certificate")


@pytest.mark.parametrize("key", ["mldsa44", "mldsa65", "mldsa87"])
def test_mldsa_signature_over_the_string_to_sign(pki, fake, key):
    """ML-DSA: algorithm AWS4-X509-MLDSA, pure ML-DSA over the string to sign, empty context;
    a signature with a context, over the SHA-256 of the string to sign, or of another level's
    key is refused."""
    files = pki.leaf(key)
    req = signed(files.leaf)
    assert req.header("authorization").startswith("AWS4-X509-MLDSA Credential=")
    assert_accepted(send(fake.url, req), fake)
    sts = req.string_to_sign.encode()
    other = pki.leaf("mldsa65" if key != "mldsa65" else "mldsa44").leaf.key
    for bad in (files.leaf.key.sign(sts, b"ctx"),
                files.leaf.key.sign(hashlib.sha256(sts).digest()),
                other.sign(sts)):
        auth = re.sub("Signature=[0-9a-f]+", f"Signature={bad.hex()}",
                      req.header("authorization"))
        assert_rejected(send(fake.url, req.with_header("Authorization", auth)), fake,
                        "signature does not verify")


def test_mldsa_key_with_ecdsa_algorithm_refused(pki, fake):
    req = signed(pki.leaf("mldsa44").leaf, algorithm="AWS4-X509-ECDSA-SHA256")
    assert_rejected(send(fake.url, req), fake, "does not match the leaf key")


def test_expired_intermediate(pki, fake):
    now = dt.datetime.now(dt.timezone.utc)
    old = make_intermediate(pki.root, "old intermediate", not_before=now - dt.timedelta(days=30),
                            not_after=now - dt.timedelta(days=1))
    leaf = make_leaf(old, key="p256", not_before=now - dt.timedelta(days=2))
    assert_rejected(send(fake.url, signed(leaf, [old])), fake, "old intermediate.*validity")


@pytest.mark.parametrize("key", ["p521", "ed25519"])
def test_unsupported_leaf_keys(pki, fake, key):
    files = pki.issue(key)
    req = signed(files.leaf, algorithm="AWS4-X509-ECDSA-SHA256")
    assert_rejected(send(fake.url, req), fake, "unsupported leaf key")


def test_wrong_key_for_certificate(pki, fake):
    files = pki.leaf("p256")
    other = pki.leaf("p256", via_intermediate=True)
    req = sign_create_session(files.leaf.cert, other.leaf.key, arns=ARNS)
    assert_rejected(send(fake.url, req), fake, "signature does not verify")


@pytest.mark.parametrize("field, value, reason", [
    ("trustAnchorArn", PROFILE_ARN, "trustAnchorArn .* is malformed"),
    ("profileArn", TA_ARN, "profileArn .* is malformed"),
    ("roleArn", f"arn:aws:iam::{ACCOUNT}:user/someone", "roleArn .* is malformed"),
    ("roleArn", "ExampleRole", "roleArn .* is malformed"),
    ("trustAnchorArn", TA_ARN.replace(REGION, "eu-west-1"), "trustAnchorArn region eu-west-1"),
    ("profileArn", PROFILE_ARN.replace(REGION, "eu-west-1"), "profileArn region eu-west-1"),
    ("profileArn", PROFILE_ARN.replace(ACCOUNT, "210987654321"), "different accounts"),
    ("profileArn", "", "profileArn missing"),
])
@pytest.mark.parametrize("arns_in", ["query", "body"])
def test_bad_arns(pki, fake, field, value, reason, arns_in):
    arns = {**ARNS, field: value}
    if not value:
        del arns[field]
    req = sign_create_session(pki.leaf("p256").leaf.cert, pki.leaf("p256").leaf.key, arns=arns,
                              arns_in=arns_in)
    assert_rejected(send(fake.url, req), fake, reason, 400, "ValidationException")


def test_arn_in_query_and_body(pki, fake):
    files = pki.leaf("p256")
    req = signed(files.leaf, body_extra={"roleArn": ROLE_ARN})
    assert_rejected(send(fake.url, req), fake, "roleArn both in the query and in the body",
                    400, "ValidationException")


@pytest.mark.parametrize("body, reason", [
    (b'{"durationSeconds":899}', "durationSeconds must be an int in 900..43200, got 899"),
    (b'{"durationSeconds":43201}', "got 43201"),
    (b'{"durationSeconds":"3600"}', "got '3600'"),
    (b'{"durationSeconds":3600.0}', "got 3600.0"),
    (b'{}', "got None"),
    (b'{"durationSeconds":3600,"extra":1}', "unknown body field\\(s\\): extra"),
    (b'[3600]', "not a JSON object"),
    (b'{"durationSeconds":3600', "not JSON"),
])
def test_bad_bodies(pki, fake, body, reason):
    req = signed(pki.leaf("p256").leaf, body=body)
    assert_rejected(send(fake.url, req), fake, reason, 400, "ValidationException")


@pytest.mark.parametrize("duration", [900, 43200])
def test_duration_bounds_accepted(pki, fake, duration):
    assert_accepted(send(fake.url, signed(pki.leaf("p256").leaf, duration=duration)), fake)
    assert fake.requests[-1].json["durationSeconds"] == duration


def test_content_type_must_be_exact(pki, fake):
    req = signed(pki.leaf("p256").leaf, content_type="application/json; charset=utf-8")
    assert_rejected(send(fake.url, req), fake, "Content-Type must be exactly", 400,
                    "ValidationException")


def test_role_session_name_refused_by_default(pki, fake):
    req = signed(pki.leaf("p256").leaf, body_extra={"roleSessionName": "my-session"})
    assert_rejected(send(fake.url, req), fake, "roleSessionName sent but not accepted",
                    message="Not authorized to set roleSessionName.")


def test_role_session_name_accepted_when_enabled(pki, fake):
    fake.accept_role_session_name = True
    resp = send(fake.url, signed(pki.leaf("p256").leaf,
                                 body_extra={"roleSessionName": "my-session"}))
    assert_accepted(resp, fake)
    assert resp.json["credentialSet"][0]["assumedRoleUser"]["arn"].endswith(
        "/ExampleRole/my-session")
    bad = signed(pki.leaf("p256").leaf, body_extra={"roleSessionName": "no spaces allowed"})
    assert_rejected(send(fake.url, bad), fake, "roleSessionName .* is invalid", 400,
                    "ValidationException")


def test_unsorted_signed_headers(pki, fake):
    req = signed(pki.leaf("p256").leaf,
                 signed_headers=["host", "content-type", "x-amz-date", "x-amz-x509"])
    assert_rejected(send(fake.url, req), fake, "not sorted")


def test_extra_signed_header_is_fine(pki, fake):
    req = signed(pki.leaf("p256").leaf, extra_headers={"amz-sdk-request": "attempt=1; max=3"})
    assert_accepted(send(fake.url, req), fake)


def test_header_values_are_trimmed_and_collapsed(pki, fake):
    req = signed(pki.leaf("p256").leaf, extra_headers={"x-amz-meta": "a   b"})
    req = req.with_header("x-amz-meta", "  a b  ")
    assert_accepted(send(fake.url, req), fake)
    assert "\nx-amz-meta:a b\n" in fake.requests[-1].canonical_request


@pytest.mark.parametrize("overrides, reason", [
    ({"serial": "1"}, "Credential serial 1 != leaf serial"),
    ({"scope_region": "us-west-2"}, "scope region 'us-west-2'"),
    ({"scope_date": "19991231"}, "scope date 19991231"),
    ({"when": dt.timedelta(minutes=-6)}, "s from now"),
    ({"when": dt.timedelta(minutes=6)}, "s from now"),
    ({"algorithm": "AWS4-X509-RSA-SHA256"}, "does not match the leaf key"),
])
def test_credential_scope_and_date(pki, fake, overrides, reason):
    if "when" in overrides:  # an offset from now, resolved at run time
        overrides = {"when": dt.datetime.now(dt.timezone.utc) + overrides["when"]}
    assert_rejected(send(fake.url, signed(pki.leaf("p256").leaf, **overrides)), fake, reason)


def test_missing_authorization(pki, fake):
    req = signed(pki.leaf("p256").leaf).with_header("Authorization", None)
    assert_rejected(send(fake.url, req), fake, "no Authorization header")


# ---- 3. controls ------------------------------------------------------------------------------

def test_fail_next_then_success(pki, fake):
    fake.fail_next(2, 500, "InternalServerException", "boom")
    fake.fail_next(1, 429, "ThrottlingException", "slow down", retry_after=1)
    leaf = pki.leaf("p256").leaf
    r1, r2, r3, r4 = (send(fake.url, signed(leaf)) for _ in range(4))
    assert (r1.status, r2.status, r3.status, r4.status) == (500, 500, 429, 201)
    assert r1.headers["x-amzn-errortype"] == "InternalServerException"
    assert r1.json == {"message": "boom"}
    assert r3.headers["retry-after"] == "1" and "retry-after" not in r1.headers
    recs = fake.requests
    assert [r.verdict for r in recs] == ["injected"] * 3 + ["accepted"]
    assert all(r.valid for r in recs)  # injected requests are still verified
    assert fake.count == 1


def test_injected_failure_still_records_invalid_requests(pki, fake, other_pki):
    fake.fail_next(1, 503, "ServiceUnavailable", "later")
    resp = send(fake.url, signed(other_pki[1]))
    assert resp.status == 503
    rec = fake.requests[-1]
    assert rec.verdict == "injected" and rec.valid is False and "issued neither" in rec.reason


def test_set_lifetime(pki, fake):
    leaf = pki.leaf("p256").leaf
    fake.set_lifetime(600)
    creds = send(fake.url, signed(leaf)).json["credentialSet"][0]["credentials"]
    expiry = dt.datetime.strptime(creds["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc)
    assert 590 <= (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds() <= 600
    fake.set_lifetime(None)
    creds = send(fake.url, signed(leaf, duration=900)).json["credentialSet"][0]["credentials"]
    expiry = dt.datetime.strptime(creds["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc)
    assert 890 <= (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds() <= 900


def _control(url, method, path, payload=None):
    body = json.dumps(payload).encode() if payload is not None else b""
    return send(url, method=method, target=path, headers=[("Host", url[7:]),
                ("Content-Type", "application/json")], body=body)


def test_http_control_api(pki, fake):
    assert _control(fake.url, "POST", "/_fake/fail", {"count": 1, "status": 403,
                    "code": "AccessDeniedException", "message": "nope"}).status == 200
    assert _control(fake.url, "POST", "/_fake/lifetime", {"seconds": 900}).status == 200
    assert send(fake.url, signed(pki.leaf("p256").leaf)).status == 403
    assert send(fake.url, signed(pki.leaf("p256").leaf)).status == 201
    stats = _control(fake.url, "GET", "/_fake/stats").json
    assert stats["count"] == 1 and stats["requests"] == 2 and stats["injected"] == 1
    assert stats["lifetime"] == 900 and stats["pending_failures"] == 0
    assert stats["last"]["verdict"] == "accepted"
    assert _control(fake.url, "POST", "/_fake/reset").json["requests"] == 0
    assert _control(fake.url, "GET", "/_fake/nothing").status == 404


def test_script_mode(pki, tmp_path):
    anchor = write_cert(tmp_path / "anchor.pem", pki.root)
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_SCRIPT), "--listen", "127.0.0.1:0", "--trust-anchor",
         str(anchor), "--region", REGION, "--lifetime", "1000"],
        stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stderr.readline()
        url = re.search(r"listening on (http://\S+)", banner).group(1)
        _control(url, "POST", "/_fake/fail", {"count": 1, "status": 503,
                                               "code": "ServiceUnavailable", "message": "x"})
        leaf = pki.leaf("p384", via_intermediate=True)
        assert send(url, signed(leaf.leaf, leaf.chain)).status == 503
        resp = send(url, signed(leaf.leaf, leaf.chain))
        assert resp.status == 201
        expiry = dt.datetime.strptime(
            resp.json["credentialSet"][0]["credentials"]["expiration"],
            "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        assert 990 <= (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds() <= 1000
        assert send(url, signed(pki.issue("p256", v1=True).leaf)).status == 403
        assert _control(url, "GET", "/_fake/stats").json["count"] == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = [line for line in err.splitlines() if "/sessions" in line]
    assert len(lines) == 3
    assert "503 injected" in lines[0] and "201 accepted" in lines[1]
    assert "403 rejected (leaf is X.509 v1, not v3)" in lines[2]


def test_record_contents(pki, fake):
    files = pki.leaf("rsa2048", via_intermediate=True)
    req = signed(files.leaf, files.chain)
    send(fake.url, req)
    rec = fake.requests[-1]
    assert rec["verdict"] == rec.verdict == "accepted"
    assert rec.method == "POST" and rec.path == "/sessions"
    assert dict(rec.query) == ARNS
    assert rec.headers["x-amz-x509"] == b64(files.leaf.cert)
    assert rec.headers["x-amz-x509-chain"] == b64(pki.intermediate.cert)
    assert rec.body == req.body and rec.json == {"durationSeconds": 3600}
    assert rec.serial == str(files.serial)
    assert rec.string_to_sign == req.string_to_sign


def test_requires_trust_anchor():
    with pytest.raises(ValueError):
        FakeRolesAnywhere([])


def test_der_trust_anchor(pki):
    der = pki.root.cert.public_bytes(serialization.Encoding.DER)
    with FakeRolesAnywhere([der]) as fake:
        assert_accepted(send(fake.url, signed(pki.leaf("p256").leaf)), fake)
