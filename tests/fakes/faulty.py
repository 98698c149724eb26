"""A misbehaving Vault + Roles Anywhere on loopback, for the fault matrix
(``tests/test_fault_matrix.py``).

One HTTP server answers both:

* Vault (``vault_mode``): ``POST /v1/<mount>/sign/<role>`` signs the CSR with the given issuer
  (a valid Roles Anywhere leaf: v3, digitalSignature, not a CA, SHA-256, valid for a day);
  ``POST /v1/auth/token/revoke-self`` is 204; ``POST /v1/auth/<mount>/login`` gives a token.
* Roles Anywhere (``ra_mode``): ``POST /ra/sessions``; it verifies nothing (the independent
  verifying fake is ``tests/fakes/rolesanywhere.py``): the fault is the answer.

Modes (for either side): ``ok`` (normal answer), ``infinite`` (a chunked body that never ends,
as fast as the socket takes it), ``slow`` (headers, then one byte of body every 0.2 s forever),
``silent`` (accepts, reads the request, never answers), ``json`` (``ra_json`` as the 201 body:
expired credentials, a newline in a secret, ...). Counters: ``hits[side]``.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

MODES = ("ok", "infinite", "slow", "silent", "json")


def good_credentials(lifetime: int = 3600) -> dict:
    exp = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=lifetime)
    return {
        "accessKeyId": "ASIAFAULTYFAULTYFAUL",
        "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "sessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==",
        "expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def session_body(creds: dict) -> dict:
    return {"credentialSet": [{"credentials": creds,
                               "assumedRoleUser": {"arn": "arn:aws:sts::123456789012:assumed-role/R/s"}}]}


class FaultyServer:
    def __init__(self, issuer):
        """``issuer``: a ``support.pki.Issued`` CA that signs Vault's certificates."""
        self.issuer = issuer
        self.vault_mode = "ok"
        self.ra_mode = "ok"
        self.ra_json: dict = session_body(good_credentials())
        self.hits = {"vault": 0, "ra": 0}
        self.stop_event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                if self.path.startswith("/ra/"):
                    outer.hits["ra"] += 1
                    outer._answer(self, outer.ra_mode, 201, json.dumps(outer.ra_json).encode())
                elif self.path.startswith("/v1/"):
                    outer.hits["vault"] += 1
                    outer._answer(self, outer.vault_mode, *outer._vault(self.path, body))
                else:
                    outer._send(self, 404, b"{}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def ra_endpoint(self) -> str:
        return self.url + "/ra"

    def start(self) -> "FaultyServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- answers ------------------------------------------------------------------------

    def _vault(self, path: str, body: bytes) -> tuple[int, bytes]:
        if path.endswith("/revoke-self"):
            return 204, b""
        if "/login" in path:
            return 200, json.dumps({"auth": {"client_token": "s.faulty", "metadata": {}}}).encode()
        if "/sign/" in path:
            csr = x509.load_pem_x509_csr(json.loads(body)["csr"].encode())
            cn = json.loads(body).get("common_name", "workload.test.invalid")
            pem = self._sign(csr, cn)
            ca = self.issuer.cert_pem.decode()
            return 200, json.dumps({"data": {"certificate": pem, "issuing_ca": ca,
                                             "ca_chain": [ca]}}).encode()
        return 404, b'{"errors":["no handler"]}'

    def _sign(self, csr, cn: str) -> str:
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.issuer.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.issuer.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def _send(self, h, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _answer(self, h, mode: str, status: int, body: bytes) -> None:
        try:
            if mode in ("ok", "json"):
                self._send(h, status, body)
            elif mode == "silent":
                while not self.stop_event.wait(0.2):
                    pass
            else:
                h.send_response(status)
                h.send_header("content-type", "application/json")
                h.send_header("transfer-encoding", "chunked")
                h.end_headers()
                h.wfile.flush()
                chunk = b"[" * 65536 if mode == "infinite" else b" "
                frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                while not self.stop_event.is_set():
                    h.wfile.write(frame)
                    if mode == "slow":
                        h.wfile.flush()
                        time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            h.close_connection = True
