"""A recording HTTPS (CONNECT) proxy that never opens a tunnel.

The binary, run with ``--with-proxy`` and ``HTTPS_PROXY`` pointing here, asks for
``CONNECT host:port``; the proxy records ``host:port`` and answers ``403``, so no request ever
leaves the machine and the host name the binary resolved is proven without DNS or AWS.
"""
from __future__ import annotations

import socket
import socketserver
import threading


class RecordingConnectProxy:
    """``hosts``: every ``host:port`` asked for, in order."""

    def __init__(self):
        self.hosts: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.connection.settimeout(10)
                try:
                    line = self.rfile.readline(8192).decode("latin-1")
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                except (OSError, socket.timeout):
                    return
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "CONNECT":
                    with proxy._lock:
                        proxy.hosts.append(parts[1])
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "RecordingConnectProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def take(self) -> list[str]:
        """The hosts recorded so far, and forget them."""
        with self._lock:
            hosts, self.hosts = self.hosts, []
        return hosts
