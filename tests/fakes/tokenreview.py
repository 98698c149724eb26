"""A fake Kubernetes TokenReview API, the only Kubernetes endpoint OpenBao's kubernetes auth calls.

``POST /apis/authentication.k8s.io/v1/tokenreviews`` (see docs/vault-openbao.md §4):

- ``Authorization: Bearer <reviewer token>`` must equal :attr:`FakeTokenReview.reviewer_token`
  (the ``token_reviewer_jwt`` OpenBao was configured with), else ``401 Unauthorized`` as the API
  server answers.
- ``spec.token`` is verified on its own: RS256 signature with the fixture's SA signing key,
  ``exp``/``nbf`` (no leeway), the ``kubernetes.io`` claims present. If ``spec.audiences`` is
  sent, the token's ``aud`` must intersect it (else the API server's own audiences).
- ``201`` with ``status.authenticated: true``, ``user.username
  system:serviceaccount:<ns>:<name>``, ``user.uid`` = the SA uid from the claims, the groups
  and the matched ``audiences``; or ``201`` with ``authenticated: false`` and ``status.error``.

:attr:`deny` (``True`` or an error text) makes every review fail like a deleted ServiceAccount
or revoked token; :attr:`reviews` records every request (method, path, bearer ok, token,
audiences, answer).

Run as a script to serve one for a local OpenBao (``vault/dev.sh``)::

    python tests/fakes/tokenreview.py --listen 127.0.0.1:18443 --public-key sa.pub --reviewer-token-file f
"""
from __future__ import annotations

import argparse
import json
import pathlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization

TOKENREVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
DEFAULT_API_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"]


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeTokenReview:
    def __init__(self, public_key_pem: bytes, reviewer_token: str = "reviewer",
                 api_audiences: list[str] | None = None, host: str = "127.0.0.1", port: int = 0):
        self.public_key = serialization.load_pem_public_key(public_key_pem)
        self.reviewer_token = reviewer_token
        self.api_audiences = list(api_audiences or DEFAULT_API_AUDIENCES)
        self.deny: bool | str = False
        self.reviews: list[dict] = []
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "FakeTokenReview":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output quiet
                pass

            def _reply(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                code, body = fake._handle(self.path, self.headers.get("Authorization", ""), raw)
                self._reply(code, body)

            def do_GET(self):
                self._reply(404, _status(404, "NotFound", "the server could not find the requested resource"))

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-tokenreview", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the API --------------------------------------------------------------------------
    def _handle(self, path: str, authorization: str, raw: bytes) -> tuple[int, dict]:
        record: dict = {"time": time.time(), "path": path, "bearer_ok": False, "token": None,
                        "audiences": None}
        try:
            if path.split("?")[0] != TOKENREVIEW_PATH:
                record["answer"] = "not found"
                return 404, _status(404, "NotFound", "the server could not find the requested resource")
            bearer = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else None
            record["bearer_ok"] = bearer is not None and bearer == self.reviewer_token
            if not record["bearer_ok"]:
                record["answer"] = "unauthorized"
                return 401, _status(401, "Unauthorized", "Unauthorized")
            try:
                review = json.loads(raw)
                spec = review["spec"]
                token = spec["token"]
            except (ValueError, KeyError, TypeError):
                record["answer"] = "bad request"
                return 400, _status(400, "BadRequest", "invalid TokenReview body")
            record["token"] = token
            audiences = spec.get("audiences") or None
            record["audiences"] = audiences
            status = self._review(token, audiences)
            record["answer"] = "authenticated" if status.get("authenticated") else status.get("error")
            return 201, {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            }
        finally:
            with self._lock:
                self.reviews.append(record)

    def _review(self, token: str, audiences: list[str] | None) -> dict:
        if self.deny:
            msg = self.deny if isinstance(self.deny, str) else "[invalid bearer token, service account deleted]"
            return {"user": {}, "error": msg}
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"],
                                options={"verify_aud": False, "require": ["exp", "iat"]})
        except jwt.ExpiredSignatureError:
            return {"user": {}, "error": "[invalid bearer token, service account token has expired]"}
        except jwt.InvalidTokenError as e:
            return {"user": {}, "error": f"[invalid bearer token, {e}]"}
        k8s = claims.get("kubernetes.io") or {}
        ns = k8s.get("namespace")
        sa = (k8s.get("serviceaccount") or {})
        if not ns or not sa.get("name") or not sa.get("uid"):
            return {"user": {}, "error": "[invalid bearer token, not a service account token]"}
        token_aud = claims.get("aud") or []
        if isinstance(token_aud, str):
            token_aud = [token_aud]
        wanted = audiences or self.api_audiences
        matched = [a for a in wanted if a in token_aud]
        if not matched:
            return {"user": {}, "error": f"[invalid bearer token, token audiences {json.dumps(token_aud)} "
                                          f"is invalid for the target audiences {json.dumps(wanted)}]"}
        return {
            "authenticated": True,
            "user": {
                "username": f"system:serviceaccount:{ns}:{sa['name']}",
                "uid": sa["uid"],
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            },
            "audiences": matched,
        }

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.reviews)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description="serve a fake Kubernetes TokenReview API")
    p.add_argument("--listen", default="127.0.0.1:18443")
    p.add_argument("--public-key", required=True, help="PEM public key the SA tokens are signed with")
    p.add_argument("--reviewer-token-file", required=True)
    a = p.parse_args(argv)
    host, port = a.listen.rsplit(":", 1)
    fake = FakeTokenReview(pathlib.Path(a.public_key).read_bytes(),
                           reviewer_token=pathlib.Path(a.reviewer_token_file).read_text().strip(),
                           host=host, port=int(port)).start()
    print(f"fake TokenReview API on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
