"""Network behaviour of the Roles Anywhere and Vault clients: proxies only with --with-proxy
(as the reference helper), certificate checks off only with --no-verify-ssl, and a Vault whose name does not resolve yet (DNS not ready in a
starting pod) is retried until --timeout, then reported."""
import http.client
import http.server
import threading
import time
import urllib.parse

import pytest

from support.cli import assert_error, credential_process_json
from test_credential_process import file_flags
from support.fake_ra import ra_flags
from support.tls import TlsFront


class ForwardProxy(http.server.ThreadingHTTPServer):
    """A plain-HTTP forward proxy (absolute-form request lines) that counts what it relays."""

    def __init__(self):
        self.relayed: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                proxy.relayed.append(self.path)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-connection", "connection")}
                up = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
                up.request("POST", url.path + (f"?{url.query}" if url.query else ""), body, headers)
                resp = up.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy():
    p = ForwardProxy()
    yield p
    p.shutdown()


@pytest.mark.parametrize("with_proxy", [False, True])
def test_proxy_only_with_the_flag(run_bin, pki, fake_ra, proxy, with_proxy):
    args = ["credential-process", *file_flags(pki.leaf("p256")), *ra_flags(fake_ra), "--no-cache"]
    if with_proxy:
        args.append("--with-proxy")
    proc = run_bin(args, env={"HTTP_PROXY": proxy.url, "http_proxy": proxy.url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == credential_process_json(fake_ra.issued[-1])
    # Through the proxy, the signature still verifies: Host and path are signed as sent.
    assert len(proxy.relayed) == (1 if with_proxy else 0), proxy.relayed
    assert fake_ra.count == 1


def test_unresolvable_vault_is_retried_until_the_timeout(run_bin, tmp_path, pki, fake_ra):
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    start = time.monotonic()
    proc = run_bin(["init", *ra_flags(fake_ra), "--vault-addr", "http://vault.not-ready.invalid:8200",
                    "--vault-role", "app", "--pki-role", "app", "--common-name", "x.example",
                    "--service-account-token-file", token, "--timeout", "3s",
                    "--credentials-file", tmp_path / "aws" / "credentials"], timeout=60)
    elapsed = time.monotonic() - start
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("iamra-bootstrap: error: ")]
    assert proc.returncode == 3, proc.stderr
    assert len(line) == 1 and "attempts" in line[0] and "--timeout" in line[0], proc.stderr
    assert "vault.not-ready.invalid" in line[0]
    assert 1.0 <= elapsed < 30, elapsed
    assert not (tmp_path / "aws").exists()


@pytest.fixture
def tls_ra(fake_ra, tmp_path):
    front = TlsFront(tmp_path, int(fake_ra.url.rsplit(":", 1)[1]))
    yield front
    front.close()


def test_no_verify_ssl(run_bin, pki, fake_ra, tls_ra):
    flags = ra_flags(fake_ra)
    flags[flags.index("--endpoint") + 1] = tls_ra.addr
    base = ["credential-process", *file_flags(pki.leaf("p256")), *flags, "--no-cache"]
    line = assert_error(run_bin(base), "TLS certificate", "--no-verify-ssl", exit_code=4)
    assert tls_ra.failed_handshakes() == 1, "a refused certificate is not retried"
    assert fake_ra.count == 0, line
    proc = run_bin([*base, "--no-verify-ssl"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == credential_process_json(fake_ra.issued[-1])


def test_endpoint_path_prefix_is_signed_as_sent(run_bin, pki, fake_ra):
    """Behind a gateway the endpoint has a path prefix: the request goes to <prefix>/sessions
    and the fake verifies the signature over that exact path."""
    flags = ra_flags(fake_ra)
    flags[flags.index("--endpoint") + 1] = fake_ra.url + "/gateway/rolesanywhere/"
    proc = run_bin(["credential-process", *file_flags(pki.leaf("rsa2048")), *flags, "--no-cache"])
    assert proc.returncode == 0, proc.stderr
    rec = fake_ra.requests[-1]
    assert rec.path == "/gateway/rolesanywhere/sessions" and rec.verdict == "accepted"
    assert rec.canonical_request.split("\n")[1] == "/gateway/rolesanywhere/sessions"
