#!/usr/bin/env python3
"""The `iamra-bootstrap init` flow written as a plain Python script (requests + cryptography):
the baseline that `bench/run.py` times against the binary.

Same steps, same order, same peers as the binary's default `init` (EC P-256, PKI sign mode,
token revoked):

1. ``POST <vault>/v1/auth/<mount>/login`` ``{"role", "jwt"}`` with the ServiceAccount JWT;
2. an EC P-256 key in memory and a CSR (CN only, ECDSA/SHA-256);
3. ``POST <vault>/v1/<pki mount>/sign/<role>`` ``{"csr", "common_name", "ttl"}``;
4. ``CreateSession``: ``POST <endpoint>/sessions?<ARNs as query>`` with body
   ``{"durationSeconds":N}``, signed per ``docs/rolesanywhere-protocol.md`` §2-3
   (canonical request, string to sign, ECDSA over SHA-256 DER, lower-hex; credential = the leaf
   serial in decimal; ``X-Amz-X509-Chain`` = the issuers without the self-signed root);
5. ``POST <vault>/v1/auth/token/revoke-self`` (the binary revokes right after CreateSession);
6. the credentials file: section ``[profile]`` merged into the existing file, written to a
   0600 temp file in the same folder, fsynced, renamed over the target, folder fsynced.

Exit 0 once the file is written; on failure one line on stderr and exit 1. With ``--timings``
one JSON line on stderr gives each step's milliseconds, plus ``import_ms`` (the script's own
imports, after the interpreter has started) and ``script_ms`` (first line of the script to exit).
"""
import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import base64  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import urllib.parse  # noqa: E402

import requests  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

_T_IMPORTED = time.perf_counter()

SERVICE = "rolesanywhere"
ALGORITHM = "AWS4-X509-ECDSA-SHA256"
OWNED_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token",
              "aws_security_token")


def rfc3986(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


def vault_post(session: requests.Session, addr: str, path: str, body: dict,
               token: str | None = None) -> dict:
    headers = {"X-Vault-Token": token} if token else {}
    r = session.post(f"{addr}/v1/{path}", json=body, headers=headers, timeout=30)
    if r.status_code >= 300:
        raise RuntimeError(f"Vault {path}: HTTP {r.status_code}: {r.text.strip()[:200]}")
    return r.json() if r.content else {}


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def sign_create_session(endpoint: str, region: str, arns: dict[str, str], duration: int,
                        key: ec.EllipticCurvePrivateKey, leaf: x509.Certificate,
                        chain: list[x509.Certificate], now: dt.datetime):
    """The signed CreateSession request: (url, headers, body)."""
    url = urllib.parse.urlsplit(endpoint)
    path = (url.path.rstrip("/") or "") + "/sessions"
    query = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in sorted(arns.items()))
    body = json.dumps({"durationSeconds": duration}, separators=(",", ":")).encode()
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "content-type": "application/json",
        "host": url.netloc,
        "x-amz-date": amz_date,
        "x-amz-x509": base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode(),
    }
    if chain:
        headers["x-amz-x509-chain"] = ",".join(
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain)
    signed = sorted(headers)
    canonical = "\n".join(
        ["POST", path, query]
        + [f"{name}:{' '.join(headers[name].split())}" for name in signed]
        + ["", ";".join(signed), hashlib.sha256(body).hexdigest()])
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    signature = key.sign(to_sign.encode(), ec.ECDSA(hashes.SHA256())).hex()
    headers["authorization"] = (f"{ALGORITHM} Credential={leaf.serial_number}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    return f"{url.scheme}://{url.netloc}{path}?{query}", headers, body


def set_section(existing: str, section: str, values: list[tuple[str, str]]) -> str:
    """Replace the keys we own in ``[section]`` (added at the end when missing)."""
    new_lines = "".join(f"{k} = {v}\n" for k, v in values)
    out, in_target, written = [], False, False
    for line in existing.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            in_target = stripped[1:-1].strip() == section
            out.append(line if line.endswith("\n") else line + "\n")
            if in_target and not written:
                out.append(new_lines)
                written = True
            continue
        if in_target and "=" in line and not stripped.startswith(("#", ";")) \
                and line.split("=", 1)[0].strip().lower() in OWNED_KEYS:
            continue
        out.append(line)
    text = "".join(out)
    if not written:
        if text and not text.endswith("\n\n"):
            text += "\n" if text.endswith("\n") else "\n\n"
        text += f"[{section}]\n{new_lines}"
    return text


def write_atomic(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def run(a: argparse.Namespace) -> dict[str, float]:
    steps: dict[str, float] = {}

    def mark(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] = round((now - since) * 1e3, 3)
        return now

    t = time.perf_counter()
    vault = requests.Session()
    ra = requests.Session()
    with open(a.service_account_token_file) as f:
        jwt = f.read().strip()
    login = vault_post(vault, a.vault_addr, f"auth/{a.vault_auth_mount}/login",
                       {"role": a.vault_role, "jwt": jwt})
    token = login["auth"]["client_token"]
    t = mark("login", t)

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, a.common_name)]))
           .sign(key, hashes.SHA256()))
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    t = mark("keygen", t)

    try:
        data = vault_post(vault, a.vault_addr, f"{a.pki_mount}/sign/{a.pki_role}",
                          {"csr": csr_pem, "common_name": a.common_name, "ttl": a.cert_ttl},
                          token)["data"]
        leaf = x509.load_pem_x509_certificate(data["certificate"].encode())
        chain = []
        for pem in data.get("ca_chain") or [data["issuing_ca"]]:
            for c in x509.load_pem_x509_certificates(pem.encode()):
                if c != leaf and c not in chain and not is_self_signed(c):
                    chain.append(c)
        t = mark("sign", t)

        arns = {"trustAnchorArn": a.trust_anchor_arn, "profileArn": a.profile_arn,
                "roleArn": a.role_arn}
        region = a.region or a.trust_anchor_arn.split(":")[3]
        url, headers, body = sign_create_session(a.endpoint, region, arns, a.session_duration,
                                                 key, leaf, chain,
                                                 dt.datetime.now(dt.timezone.utc))
        r = ra.post(url, data=body, headers=headers, timeout=30)
        if r.status_code // 100 != 2:
            raise RuntimeError(f"CreateSession: HTTP {r.status_code} "
                               f"{r.headers.get('x-amzn-errortype', '')}: {r.text.strip()[:200]}")
        creds = r.json()["credentialSet"][0]["credentials"]
        t = mark("create_session", t)
    finally:
        t_rev = time.perf_counter()
        vault_post(vault, a.vault_addr, "auth/token/revoke-self", {}, token)
        steps["revoke"] = round((time.perf_counter() - t_rev) * 1e3, 3)
        t = time.perf_counter()

    try:
        with open(a.credentials_file) as f:
            existing = f.read()
    except FileNotFoundError:
        existing = ""
    text = set_section(existing, a.profile, [
        ("aws_access_key_id", creds["accessKeyId"]),
        ("aws_secret_access_key", creds["secretAccessKey"]),
        ("aws_session_token", creds["sessionToken"]),
    ])
    write_atomic(a.credentials_file, text.encode())
    mark("write", t)
    return steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vault-addr", required=True)
    p.add_argument("--vault-auth-mount", default="kubernetes")
    p.add_argument("--vault-role", required=True)
    p.add_argument("--service-account-token-file", required=True)
    p.add_argument("--pki-mount", default="pki_int")
    p.add_argument("--pki-role", required=True)
    p.add_argument("--common-name", required=True)
    p.add_argument("--cert-ttl", default="1h")
    p.add_argument("--trust-anchor-arn", required=True)
    p.add_argument("--profile-arn", required=True)
    p.add_argument("--role-arn", required=True)
    p.add_argument("--region")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--session-duration", type=int, default=3600)
    p.add_argument("--credentials-file", required=True)
    p.add_argument("--profile", default="default")
    p.add_argument("--timings", action="store_true",
                   help="print one JSON line of step timings (ms) on stderr")
    a = p.parse_args(argv)
    t_run = time.perf_counter()
    try:
        steps = run(a)
    except Exception as e:  # noqa: BLE001 - one line, like the binary
        print(f"python_flow: error: {type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    if a.timings:
        end = time.perf_counter()
        print(json.dumps({"import_ms": round((_T_IMPORTED - _T_START) * 1e3, 3),
                          "steps": steps,
                          "run_ms": round((end - t_run) * 1e3, 3),
                          "script_ms": round((end - _T_START) * 1e3, 3)}),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
