"""A local STS (moto) and a recording front before it, to see what real SDKs sign with.

* ``moto_sts`` (session fixture): ``moto_server`` from ``.venv`` on a free loopback port; its
  base URL.
* :class:`StsRecorder` (``StsRecorder(moto_url).start()``, ``.stop()``): an HTTP front that
  records every request and relays it to moto unchanged. Give each client its own endpoint
  ``recorder.endpoint(tag)`` (``http://127.0.0.1:PORT/<tag>/``): SDKs sign the path they are
  given, the front strips ``/<tag>`` before relaying (moto does not check signatures), so
  ``recorder.calls(tag)`` are exactly that client's signed requests, even when several clients
  run at once. Each :class:`Call` carries the arrival time, the access key from the SigV4
  ``Authorization`` header, ``X-Amz-Date``, whether a session token was sent, and moto's status.
* ``check_calls(calls, issued)``: every call answered 200, signed with an access key that one of
  the fakes issued (``issued``: ``{access key: credentials}``), a session token sent, and that
  key unexpired both when signed (``X-Amz-Date``) and when it arrived. Returns the keys used,
  in order.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import http.server
import pathlib
import re
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from support.openbao import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
CREDENTIAL_RE = re.compile(r"Credential=([A-Z0-9]+)/")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
              "upgrade", "trailer", "content-length", "host"}


@pytest.fixture(scope="session")
def moto_sts(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    exe = ROOT / ".venv" / "bin" / "moto_server"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclasses.dataclass
class Call:
    tag: str
    time: float                 # arrival, Unix seconds
    access_key: str | None
    amz_date: float | None      # X-Amz-Date, Unix seconds
    session_token: bool
    status: int
    body: bytes


def parse_amz_date(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp()


def parse_expiration(value: str) -> float:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp()


class StsRecorder:
    def __init__(self, upstream: str):
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port)
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = self.path
                parts = path.split("/", 2)           # "", tag, rest
                tag = parts[1] if len(parts) > 1 else ""
                rest = "/" + (parts[2] if len(parts) > 2 else "")
                auth = self.headers.get("authorization") or ""
                m = CREDENTIAL_RE.search(auth)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                conn = http.client.HTTPConnection(*recorder.upstream, timeout=30)
                try:
                    conn.request(self.command, rest, body=body, headers=headers)
                    resp = conn.getresponse()
                    status, rbody = resp.status, resp.read()
                    rheaders = [(k, v) for k, v in resp.getheaders()
                                if k.lower() not in HOP_BY_HOP]
                finally:
                    conn.close()
                with recorder._lock:
                    recorder._calls.append(Call(
                        tag=tag, time=time.time(), access_key=m.group(1) if m else None,
                        amz_date=parse_amz_date(self.headers.get("x-amz-date")),
                        session_token=bool(self.headers.get("x-amz-security-token")),
                        status=status, body=rbody))
                self.send_response(status)
                for k, v in rheaders:
                    self.send_header(k, v)
                self.send_header("content-length", str(len(rbody)))
                self.end_headers()
                self.wfile.write(rbody)

            do_GET = do_POST = _relay

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def start(self) -> "StsRecorder":
        threading.Thread(target=self._server.serve_forever, name="sts-recorder",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def endpoint(self, tag: str) -> str:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", tag), tag
        return f"http://127.0.0.1:{self.port}/{tag}/"

    def calls(self, tag: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.tag == tag]


def check_calls(calls: list[Call], issued: dict[str, dict]) -> list[str]:
    """See the module doc. ``issued`` maps access key id -> the fake's credentials object."""
    assert calls, "no signed STS call reached the recorder"
    keys = []
    for c in calls:
        assert c.status == 200, (c.status, c.body[:300])
        assert c.access_key, "unsigned request"
        creds = issued.get(c.access_key)
        assert creds is not None, f"signed with {c.access_key}, which no fake issued"
        assert c.session_token, f"{c.access_key} sent without its session token"
        expires = parse_expiration(creds["expiration"])
        assert c.amz_date is not None and c.amz_date < expires, \
            f"{c.access_key} signed {c.amz_date - expires:+.0f} s after its expiry"
        assert c.time < expires, f"{c.access_key} used {c.time - expires:+.1f} s after its expiry"
        keys.append(c.access_key)
    return keys
