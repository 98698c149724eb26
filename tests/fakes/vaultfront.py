"""A front for a real Vault (OpenBao) that answers like a Vault HA cluster in a failover, for
``tests/test_vault_failover.py``.

Every ``POST /v1/<path>`` is matched against the rules, in order, each good for its first
``times`` matching requests; a request no rule takes is proxied to the Vault behind. Actions:

* ``redirect``: ``307`` with ``Location: <location>/v1/<path>`` and an empty body, as a standby
  that could not forward to the active node answers (the request never reaches Vault);
* ``html``: ``status`` with an HTML error page, as haproxy answers with no healthy server;
* ``lose``: the request is proxied (Vault runs it) and its answer replaced by an HTML ``502``,
  as when the node dies after running the request.

``seen`` lists ``(path, action)`` per request.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HTML = (b"<html><body><h1>%d Service Unavailable</h1>\nNo server is available to handle this "
        b"request.\n</body></html>\n")


class Rule:
    def __init__(self, path_contains: str, action: str, times: int = 1, status: int = 503,
                 location: str = ""):
        self.path_contains, self.action, self.left = path_contains, action, times
        self.status, self.location = status, location


class VaultFront:
    def __init__(self, upstream: str, rules: list[Rule]):
        self.upstream, self.rules = upstream.rstrip("/"), rules
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0].removeprefix("/v1/")
                rule = front._take(path)
                action = rule.action if rule else "proxy"
                with front._lock:
                    front.seen.append((path, action))
                if action == "redirect":
                    return self._send(307, b"", {"Location": f"{rule.location}{self.path}"})
                if action == "html":
                    return self._send(rule.status, HTML % rule.status,
                                      {"Content-Type": "text/html"})
                headers = {k: v for k, v in self.headers.items()
                           if k.lower().startswith("x-vault-") or k.lower() == "content-type"}
                r = requests.post(f"{front.upstream}{self.path}", data=body, headers=headers,
                                  timeout=30)
                if action == "lose":
                    return self._send(502, HTML % 502, {"Content-Type": "text/html"})
                extra = {k: v for k, v in r.headers.items()
                         if k.lower() in ("content-type", "retry-after")}
                self._send(r.status_code, r.content, extra)

            def _send(self, status, body, headers):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _take(self, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.left > 0 and rule.path_contains in path:
                    rule.left -= 1
                    return rule
        return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def actions(self, path_contains: str) -> list[str]:
        with self._lock:
            return [a for p, a in self.seen if path_contains in p]

    def start(self) -> "VaultFront":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
