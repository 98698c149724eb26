"""`iamra-bootstrap serve` (the long-running sidecar) end to end: a real OpenBao
(vault/configure.sh), the fake Kubernetes TokenReview API and the fake IAM Roles Anywhere
endpoint trusting the OpenBao PKI root -- wired exactly as tests/test_init.py wires `init`.

Written against docs/cli-contract.md (`serve` flags and endpoints) and
docs/ecosystem-contracts.md §3 (ECS container-credentials endpoint: `Token`, not
`SessionToken`; token file without a trailing newline; errors are non-2xx
`{"code","message"}`) and §4 (IMDSv2), checked with botocore's own credential providers.

Layout, to keep the suite fast:

* ``shared`` (module): one serve process (ECS endpoint + ``--imds`` + ``--credentials-file``,
  ``--log-level debug --debug``) against the session OpenBao, with credentials that live
  30 s (so it refreshes every ~21 s while the other tests run). Its first CreateSession is
  answered ``503 Retry-After: 2`` so the "not ready before the first credentials" window is
  observed deterministically. The last tests SIGTERM it and scan its whole log for secrets.
* ``outage`` (module, autouse when the outage test is selected): a Vault outage scenario on its
  own OpenBao server (started as ``openbao_factory`` does, which is function-scoped), run in a
  background thread from the start of the module (it needs ~50 s of wall-clock waiting) and
  joined by ``test_vault_outage_*``.
* A few short-lived serve processes of their own (IPv6 + SIGINT, file only, Vault unreachable)
  and two usage errors.
"""
from __future__ import annotations

import configparser
import contextlib
import datetime as dt
import http.client
import json
import os
import pathlib
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import botocore.session
import pytest
import requests

from conftest import clean_env
from fakes.rolesanywhere import FakeRolesAnywhere
from support.cli import EXIT_USAGE, assert_error
from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN, ra_flags
from support.openbao import OpenBao, free_port, terminate

LIFETIME = 30            # shared serve: credentials expire after 30 s, refresh at ~70 %
OUTAGE_LIFETIME = 40     # outage scenario: refresh at <= 30 s, gives up at <= 35 s (--timeout 5s)
ROLE_NAME = ROLE_ARN.rsplit("/", 1)[1]
OUTAGE_TEST = "test_vault_outage_serves_valid_credentials_then_errors_then_recovers"
METRIC_LINE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+$")


# ---- helpers ------------------------------------------------------------------------------

def http_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False          # never through a proxy from the environment
    return s


def parse_time(value: str) -> float:
    """An RFC 3339 ``...Z`` timestamp (whole seconds) as a Unix time."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value), value
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp()


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        assert METRIC_LINE.match(line), f"not Prometheus text: {line!r}"
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def assert_error_json(r: requests.Response, status: int) -> dict:
    """The ECS error contract: non-2xx, JSON ``{"code","message"}``."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    for field in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration"):
        assert field not in body, body
    return body


def assert_ecs_body(body: dict, issued: dict, now: float) -> None:
    """The ECS success shape (``Token``, not ``SessionToken``) carrying exactly ``issued``."""
    assert set(body) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}, body
    assert "SessionToken" not in body
    assert body["AccessKeyId"] == issued["accessKeyId"]
    assert body["SecretAccessKey"] == issued["secretAccessKey"]
    assert body["Token"] == issued["sessionToken"]
    assert body["Expiration"] == issued["expiration"]
    assert parse_time(body["Expiration"]) > now, "expired credentials served"


def issued_by_key(fake: FakeRolesAnywhere, key: str) -> dict:
    matches = [c for c in fake.issued if c["accessKeyId"] == key]
    assert len(matches) == 1, f"{key} was not issued by the fake (or twice)"
    return matches[0]


def latest(fake: FakeRolesAnywhere, fetch, key_of):
    """``fetch()`` until what it returns is the fake's newest credentials with no refresh in
    between (a refresh may land between reading ``fake.count`` and the fetch)."""
    got = None
    for _ in range(20):
        n = fake.count
        got = fetch()
        if n and key_of(got) == fake.issued[n - 1]["accessKeyId"] and fake.count == n:
            return got, fake.issued[n - 1]
        time.sleep(0.2)
    raise AssertionError(f"never served the newest credentials: {got!r} vs {fake.issued[-1]}")


def start_openbao(directory: pathlib.Path, sa_keys, tokenreview) -> OpenBao:
    """What ``openbao_factory()`` does, usable from a module-scoped background scenario."""
    for attempt in range(3):
        ob = OpenBao(directory / f"try{attempt}", sa_keys, tokenreview)
        try:
            ob.start()
            ob.configure()
            return ob
        except RuntimeError as e:
            ob.stop()
            if "address already in use" in str(e) and attempt < 2:
                continue
            raise
    raise AssertionError("unreachable")


def free_port6() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        free_port6()
        return True
    except OSError:
        return False


class Serve:
    """One ``iamra-bootstrap serve`` process (stdout/stderr to files, SIGTERM on stop)."""

    def __init__(self, iamra_bin, workdir: pathlib.Path, ob: OpenBao, ra: FakeRolesAnywhere,
                 sa_token: pathlib.Path, *, host: str = "127.0.0.1", token: bool = True,
                 creds_file: bool = True, imds: bool = False, timeout: str = "20s",
                 extra: tuple = ()):
        self.bin, self.dir, self.ob, self.ra, self.host = iamra_bin, workdir, ob, ra, host
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sa_token = sa_token
        self.token_file = self.dir / "run" / "token" if token else None
        self.creds_file = self.dir / "aws" / "credentials" if creds_file else None
        self.stderr_path, self.stdout_path = self.dir / "serve.stderr", self.dir / "serve.stdout"
        self.imds, self.timeout, self.extra = imds, timeout, extra
        self.proc: subprocess.Popen | None = None
        self.http = http_session()
        self.port = 0

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def base(self) -> str:
        return f"http://{self.listen}"

    def url(self, path: str) -> str:
        return self.base + path

    def args(self) -> list[str]:
        ob = self.ob
        args = ["serve", *ra_flags(self.ra), "--vault-addr", ob.addr,
                "--vault-role", ob.k8s_role, "--service-account-token-file", self.sa_token,
                "--pki-role", ob.pki_role, "--common-name", ob.fixed_cn,
                "--termination-log", self.dir / "termination-log",
                "--timeout", self.timeout, "--listen", self.listen, "--log-level", "debug"]
        if self.token_file:
            args += ["--auth-token-file", self.token_file]
        if self.creds_file:
            args += ["--credentials-file", self.creds_file]
        if self.imds:
            args.append("--imds")
        return [str(a) for a in [*args, *self.extra]]

    def start(self) -> "Serve":
        """Start and wait for ``/healthz``; retries on a lost free-port race."""
        for attempt in range(3):
            self.port = free_port6() if ":" in self.host else free_port()
            with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
                self.proc = subprocess.Popen(
                    [str(self.bin), *self.args()], stdout=out, stderr=err,
                    stdin=subprocess.DEVNULL, env=clean_env(home=self.dir / "home"))
            try:
                self.wait_up()
                return self
            except AssertionError:
                if self.proc.poll() == EXIT_USAGE and "cannot listen" in self.stderr \
                        and attempt < 2:
                    continue
                raise
        raise AssertionError("unreachable")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def _alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, \
            f"serve exited {self.proc.returncode if self.proc else None}:\n{self.stderr[-4000:]}"

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 10)
        return self.http.get(self.url(path), **kw)

    def wait_up(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._alive()
            with contextlib.suppress(requests.ConnectionError):
                if self.get("/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.02)
        raise AssertionError(f"/healthz never answered:\n{self.stderr[-4000:]}")

    def wait_ready(self, timeout: float = 60, abort: threading.Event | None = None) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self._alive()
            if self.get("/readyz").status_code == 200:
                return time.monotonic() - start
            if abort is not None and abort.wait(0.1):
                raise Aborted()
            time.sleep(0.1)
        raise AssertionError(f"/readyz not 200 after {timeout}s:\n{self.stderr[-4000:]}")

    @property
    def token(self) -> str:
        return self.token_file.read_text()

    def creds(self, token: str | None = "file", **kw) -> requests.Response:
        headers = {}
        if token == "file":
            token = self.token
        if token is not None:
            headers["Authorization"] = token
        return self.get("/v1/credentials", headers=headers, **kw)

    def metrics(self) -> dict[str, float]:
        r = self.get("/metrics")
        assert r.status_code == 200, r.text
        return parse_metrics(r.text)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code = terminate(self.proc)
        self.http.close()
        return code


class Aborted(Exception):
    """The module is being torn down: the background scenario stops early."""


def secrets_of(fake: FakeRolesAnywhere) -> list[str]:
    out = []
    for c in fake.issued:
        out += [c["secretAccessKey"], c["sessionToken"], c["secretAccessKey"][:16],
                c["sessionToken"][:24], c["sessionToken"][-24:]]
    return out


def assert_no_secrets(log: str, secrets: list[str]) -> None:
    assert log.strip(), "no log at all: nothing to check"
    for s in secrets:
        assert s and s not in log, f"secret leaked into serve's stderr: {s[:6]}…"
    assert "PRIVATE KEY" not in log


def sa_jwt_parts(path: pathlib.Path) -> list[str]:
    jwt = path.read_text().strip()
    return [jwt, jwt.split(".")[2]]


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(iamra_bin, openbao_session, tmp_path_factory):
    """The long-running serve most tests talk to (see the module docstring)."""
    ob = openbao_session
    work = tmp_path_factory.mktemp("serve-shared")
    fake = FakeRolesAnywhere([ob.root_ca_pem], region=REGION).start()
    srv = None
    try:
        fake.set_lifetime(LIFETIME)
        fake.fail_next(1, 503, "ServiceUnavailableException", "try again", retry_after=2)
        sa = ob.write_sa_token(work / "sa" / "token")
        vault_mark = ob.audit_mark()
        srv = Serve(iamra_bin, work, ob, fake, sa, imds=True, extra=("--debug",))
        started = time.monotonic()
        srv.start()
        # Before the first credentials (CreateSession is held back >= 2 s by Retry-After).
        srv.early = {
            "healthz": srv.get("/healthz"),
            "readyz": srv.get("/readyz"),
            "creds": srv.creds(),
            "metrics": srv.get("/metrics"),
        }
        srv.early_elapsed = time.monotonic() - started
        srv.wait_ready(60)
        srv.fake, srv.vault_mark, srv.sa_jwts = fake, vault_mark, [sa.read_text()]
        srv.imds_tokens = []
        yield srv
    finally:
        if srv is not None:
            srv.stop()
        fake.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """botocore sees nothing but what a test sets: no AWS_* variables, no config or
    credentials files, no proxies, no boto2 config."""
    for k in list(os.environ):
        if k.startswith(("AWS_", "BOTO")) or k.lower() in (
                "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(k)
    missing = tmp_path / "nonexistent"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing / "credentials"))
    monkeypatch.setenv("BOTO_CONFIG", str(missing / "boto.cfg"))
    monkeypatch.setenv("HOME", str(missing))
    return monkeypatch


def container_session(aws_env, srv: Serve) -> botocore.session.Session:
    aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.url("/v1/credentials"))
    aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(srv.token_file))
    aws_env.setenv("AWS_EC2_METADATA_DISABLED", "true")   # never fall through to IMDS
    return botocore.session.Session()


class Outage(threading.Thread):
    """Vault stops during the refresh: serve keeps the still-valid credentials, then refuses
    (never serves expired ones), then recovers by itself once Vault is back."""

    def __init__(self, iamra_bin, work: pathlib.Path, sa_keys, tokenreview):
        super().__init__(name="serve-vault-outage", daemon=True)
        self.bin, self.work, self.sa_keys, self.tokenreview = iamra_bin, work, sa_keys, tokenreview
        self.abort = threading.Event()
        self.error: BaseException | None = None
        self.notes: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.ob: OpenBao | None = None
        self.fake: FakeRolesAnywhere | None = None
        self.srv: Serve | None = None

    def note(self, what: str) -> None:
        self.notes[what] = round(time.monotonic() - self.t0, 1)

    def sleep(self, seconds: float) -> None:
        if self.abort.wait(seconds):
            raise Aborted()

    def run(self) -> None:
        try:
            self.scenario()
        except Aborted:
            pass
        except BaseException as e:  # re-raised by the test
            self.error = e
        finally:
            if self.srv is not None:
                self.srv.stop()
            if self.fake is not None:
                self.fake.stop()
            if self.ob is not None:
                self.ob.stop()

    def scenario(self) -> None:
        self.ob = ob = start_openbao(self.work / "openbao", self.sa_keys, self.tokenreview)
        self.note("openbao up")
        self.fake = fake = FakeRolesAnywhere([ob.root_ca_pem], region=REGION).start()
        fake.set_lifetime(OUTAGE_LIFETIME)
        sa = ob.write_sa_token(self.work / "sa" / "token")
        self.srv = srv = Serve(self.bin, self.work / "serve", ob, fake, sa, creds_file=False,
                               imds=True, timeout="5s")
        srv.start()
        srv.wait_ready(60, abort=self.abort)
        self.note("serve ready")
        t = time.time()
        r = srv.creds()
        assert r.status_code == 200, r.text
        assert fake.count == 1
        assert_ecs_body(r.json(), fake.issued[0], t)
        key1, exp1 = fake.issued[0]["accessKeyId"], parse_time(fake.issued[0]["expiration"])

        ob.stop()
        self.note("openbao stopped")

        # Vault is down: the refresh (at <= 30 s) fails after the 5 s timeout, yet the
        # still-valid credentials keep being served until they expire, then 503 JSON.
        served_after_failure = False
        while True:
            assert time.time() < exp1 + 10, "still not refusing 10 s after expiry"
            failures = srv.metrics()["iamra_refresh_failures_total"]
            t = time.time()
            r = srv.creds()
            if r.status_code == 200:
                body = r.json()
                assert body["AccessKeyId"] == key1, "new credentials while Vault is down?"
                assert parse_time(body["Expiration"]) > t, "expired credentials served"
                if failures >= 1:
                    if not served_after_failure:
                        self.note("refresh failed, still serving")
                    served_after_failure = True
            else:
                assert t >= exp1 - 3, f"refused {exp1 - t:.1f} s before expiry: {r.text}"
                assert_error_json(r, 503)
                self.note("refused after expiry")
                break
            assert srv.get("/healthz").status_code == 200
            self.sleep(0.25)
        assert served_after_failure, "no failed refresh observed while the credentials were valid"
        assert srv.get("/readyz").status_code == 503
        m = srv.metrics()
        assert m["iamra_credentials_expiry_seconds"] <= 0, m
        assert m["iamra_refresh_failures_total"] >= 1, m
        for _ in range(4):                 # stays refused: never the expired credentials
            assert_error_json(srv.creds(), 503)
            self.sleep(0.25)
        imds_token = srv.http.put(srv.url("/latest/api/token"), timeout=5,
                                  headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).text
        r = srv.get(f"/latest/meta-data/iam/security-credentials/{ROLE_NAME}",
                    headers={"X-aws-ec2-metadata-token": imds_token})
        assert r.status_code == 503 and "AccessKeyId" not in r.text, (r.status_code, r.text)
        assert fake.count == 1
        assert "refresh failed" in srv.stderr

        ob.restart()                       # same root (trust anchor), reconfigured
        self.note("openbao restarted")
        srv.wait_ready(90, abort=self.abort)
        self.note("serve recovered")
        t = time.time()
        r = srv.creds()
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["AccessKeyId"] != key1
        assert_ecs_body(body, fake.issued[-1], t)
        m = srv.metrics()
        assert m["iamra_refreshes_total"] >= 2 and m["iamra_credentials_expiry_seconds"] > 0, m
        secrets = secrets_of(fake) + [srv.token, imds_token, *sa_jwt_parts(sa)]
        secrets += [tok["client_token"] for tok in ob.issued_tokens()]
        assert_no_secrets(srv.stderr, secrets)


@pytest.fixture(scope="module", autouse=True)
def outage(request, iamra_bin, sa_keys, tokenreview, tmp_path_factory):
    """Starts the outage scenario at the beginning of the module (when its test is selected),
    so its ~70 s of waiting overlaps the other tests."""
    selected = any(getattr(item, "originalname", item.name) == OUTAGE_TEST
                   and item.module is request.module for item in request.session.items)
    if not selected:
        yield None
        return
    scenario = Outage(iamra_bin, tmp_path_factory.mktemp("serve-outage"), sa_keys, tokenreview)
    scenario.start()
    try:
        yield scenario
    finally:
        scenario.abort.set()
        scenario.join(timeout=60)


# ---- startup and readiness ----------------------------------------------------------------

def test_not_ready_before_the_first_credentials(shared):
    early = shared.early
    assert early["healthz"].status_code == 200
    assert early["readyz"].status_code == 503, \
        f"ready {shared.early_elapsed:.1f} s after start, with CreateSession held back 2 s"
    assert_error_json(early["creds"], 503)
    metrics = early["metrics"]
    assert metrics.status_code == 200
    assert "iamra_credentials_expiry_seconds" not in metrics.text   # absent until credentials
    assert parse_metrics(metrics.text)["iamra_refreshes_total"] == 0
    # ... and ready afterwards, with the retried CreateSession.
    assert shared.get("/readyz").status_code == 200
    assert shared.get("/healthz").status_code == 200
    verdicts = [r.verdict for r in shared.fake.requests]
    assert verdicts[:2] == ["injected", "accepted"], verdicts


def test_auth_token_file_is_private_and_has_no_newline(shared):
    st = shared.token_file.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    raw = shared.token_file.read_bytes()
    assert re.fullmatch(rb"[0-9a-f]{64}", raw), raw   # 32 random bytes in hex, no CR/LF


def test_botocore_container_provider_gets_the_issued_credentials(shared, aws_env):
    session = container_session(aws_env, shared)
    creds = session.get_credentials()
    assert creds is not None and creds.method == "container-role"

    frozen, issued = latest(shared.fake, creds.get_frozen_credentials, lambda f: f.access_key)
    assert frozen.access_key == issued["accessKeyId"]
    assert frozen.secret_key == issued["secretAccessKey"]
    assert frozen.token == issued["sessionToken"]

    body, issued = latest(shared.fake, lambda: shared.creds().json(), lambda b: b["AccessKeyId"])
    assert_ecs_body(body, issued, time.time())
    r = shared.creds()
    assert r.headers["content-type"] == "application/json"
    assert r.headers.get("cache-control") == "no-store"


# ---- the ECS endpoint's authorization -----------------------------------------------------

def test_authorization_token(shared):
    assert_error_json(shared.creds(token=None), 401)
    assert_error_json(shared.creds(token="0" * 64), 403)
    token = shared.token
    assert_error_json(shared.creds(token=token[:-1]), 403)                  # a prefix
    assert_error_json(shared.creds(token=token + "0"), 403)                 # longer
    assert_error_json(shared.creds(token=f"Bearer {token}"), 403)
    assert_error_json(shared.creds(token=token.upper()), 403)
    before = shared.metrics()
    r = shared.creds()
    assert r.status_code == 200, r.text
    assert set(r.json()) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    after = shared.metrics()
    assert after["iamra_credential_requests_served_total"] >= \
        before["iamra_credential_requests_served_total"] + 1
    assert after["iamra_credential_requests_refused_total"] >= 6
    assert shared.get("/nope").status_code == 404
    assert shared.http.post(shared.url("/v1/credentials"), timeout=5,
                            headers={"Authorization": token}).status_code != 200


def test_two_hundred_concurrent_clients(shared):
    token, n = shared.token, 200
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def client(i: int) -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=30)
            barrier.wait(timeout=30)
            conn.request("GET", "/v1/credentials", headers={"Authorization": token})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            results[i] = (resp.status, resp.getheader("content-type"), json.loads(body))
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.monotonic() - start
    errors = [r for r in results if not (isinstance(r, tuple) and r[0] == 200)]
    assert not errors, f"{len(errors)} failed, e.g. {errors[:3]}"
    keys = set()
    for status, ctype, body in results:
        assert ctype == "application/json"
        assert set(body) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
        issued = issued_by_key(shared.fake, body["AccessKeyId"])
        assert body["SecretAccessKey"] == issued["secretAccessKey"]
        assert body["Token"] == issued["sessionToken"]
        keys.add(body["AccessKeyId"])
    assert len(keys) <= 2, keys                       # at most one refresh in between
    assert elapsed < 30


# ---- IMDSv2 -------------------------------------------------------------------------------

def test_imds_v2(shared):
    def put(headers: dict) -> requests.Response:
        return shared.http.put(shared.url("/latest/api/token"), headers=headers, timeout=5)

    assert put({}).status_code == 400
    assert put({"X-aws-ec2-metadata-token-ttl-seconds": "0"}).status_code == 400
    assert put({"X-aws-ec2-metadata-token-ttl-seconds": "21601"}).status_code == 400
    assert put({"X-aws-ec2-metadata-token-ttl-seconds": "60",
                "X-Forwarded-For": "10.0.0.1"}).status_code == 403
    r = put({"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    assert r.status_code == 200, r.text
    token = r.text
    assert token and "\n" not in token
    shared.imds_tokens.append(token)

    listing = "/latest/meta-data/iam/security-credentials/"
    assert shared.get(listing).status_code == 401
    assert shared.get(listing, headers={"X-aws-ec2-metadata-token": "bogus"}).status_code == 401
    assert shared.get(listing + ROLE_NAME).status_code == 401
    auth = {"X-aws-ec2-metadata-token": token}
    r = shared.get(listing, headers=auth)
    assert r.status_code == 200 and r.text.strip() == ROLE_NAME, r.text
    assert shared.get(listing + "OtherRole", headers=auth).status_code == 404

    def doc():
        resp = shared.get(listing + ROLE_NAME, headers=auth)
        assert resp.status_code == 200, resp.text
        return resp.json()

    now = time.time()
    body, issued = latest(shared.fake, doc, lambda b: b["AccessKeyId"])
    assert body["Code"] == "Success" and body["Type"] == "AWS-HMAC", body
    assert body["AccessKeyId"] == issued["accessKeyId"]
    assert body["SecretAccessKey"] == issued["secretAccessKey"]
    assert body["Token"] == issued["sessionToken"]
    assert body["Expiration"] == issued["expiration"] and parse_time(body["Expiration"]) > now
    assert parse_time(body["LastUpdated"]) <= time.time() + 1

    # A token lives for its TTL only.
    short = put({"X-aws-ec2-metadata-token-ttl-seconds": "2"}).text
    shared.imds_tokens.append(short)
    assert shared.get(listing, headers={"X-aws-ec2-metadata-token": short}).status_code == 200
    time.sleep(2.3)
    assert shared.get(listing, headers={"X-aws-ec2-metadata-token": short}).status_code == 401
    assert shared.get(listing, headers=auth).status_code == 200


def test_botocore_imds_provider(shared, aws_env):
    aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", shared.base)   # no trailing slash
    session = botocore.session.Session()
    creds = session.get_credentials()
    assert creds is not None and creds.method == "iam-role"
    frozen, issued = latest(shared.fake, creds.get_frozen_credentials, lambda f: f.access_key)
    assert frozen.secret_key == issued["secretAccessKey"]
    assert frozen.token == issued["sessionToken"]


# ---- metrics ------------------------------------------------------------------------------

def test_metrics_are_prometheus_text(shared):
    r = shared.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "# TYPE iamra_refreshes_total counter\n" in text
    assert "# TYPE iamra_credentials_expiry_seconds gauge\n" in text
    m = parse_metrics(text)
    assert m["iamra_refreshes_total"] >= 1
    assert 0 < m["iamra_credentials_expiry_seconds"] <= LIFETIME
    assert m["iamra_certificate_expiry_seconds"] > 0
    assert m["iamra_refresh_failures_total"] >= 0
    # Every sample has HELP and TYPE.
    for name in {n.split("{")[0] for n in m}:
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text


# ---- refresh ------------------------------------------------------------------------------

def login_jwts(ob: OpenBao, since: int) -> list[str]:
    """The JWTs presented to auth/kubernetes/login (the audit log is raw in the tests)."""
    return [((e.get("request") or {}).get("data") or {}).get("jwt")
            for e in ob.audit_entries(since)
            if e.get("type") == "request"
            and (e.get("request") or {}).get("path") == "auth/kubernetes/login"]


def test_refresh_before_expiry_reaches_botocore_and_the_file(shared, aws_env):
    # The kubelet rotates the projected ServiceAccount token: every refresh re-reads it.
    rotated = shared.ob.mint_sa_token(ttl=3599)
    assert rotated not in shared.sa_jwts
    tmp = shared.sa_token.with_suffix(".new")
    tmp.write_text(rotated)
    tmp.replace(shared.sa_token)
    shared.sa_jwts.append(rotated)
    mark = shared.ob.audit_mark()

    session = container_session(aws_env, shared)
    creds = session.get_credentials()
    first = creds.get_frozen_credentials()
    old = issued_by_key(shared.fake, first.access_key)
    old_expiry = parse_time(old["expiration"])
    deadline = time.monotonic() + 40
    while True:
        frozen = creds.get_frozen_credentials()     # botocore refetches: they expire soon
        if frozen.access_key != first.access_key:
            break
        assert time.monotonic() < deadline, "no new credentials within 40 s"
        assert shared.get("/readyz").status_code == 200
        time.sleep(0.5)
    assert time.time() < old_expiry, "refreshed only after the old credentials expired"
    new = issued_by_key(shared.fake, frozen.access_key)
    assert frozen.secret_key == new["secretAccessKey"] and frozen.token == new["sessionToken"]
    assert parse_time(new["expiration"]) > old_expiry

    # The credentials file was rewritten (before the new credentials were served), 0600.
    cp = configparser.RawConfigParser()
    cp.read_string(shared.creds_file.read_text())
    keys_in_file = cp.get("default", "aws_access_key_id")
    assert keys_in_file in (new["accessKeyId"], shared.fake.issued[-1]["accessKeyId"])
    in_file = issued_by_key(shared.fake, keys_in_file)
    assert cp.get("default", "aws_secret_access_key") == in_file["secretAccessKey"]
    assert cp.get("default", "aws_session_token") == in_file["sessionToken"]
    assert stat.S_IMODE(shared.creds_file.stat().st_mode) == 0o600

    # The schedule: ~70 % of the 30 s lifetime (± 5 % jitter) between CreateSessions.
    accepted = [r.time.timestamp() for r in shared.fake.requests if r.verdict == "accepted"]
    gaps = [b - a for a, b in zip(accepted, accepted[1:])]
    assert gaps and all(17 <= g <= 25 for g in gaps), gaps
    assert shared.metrics()["iamra_refreshes_total"] in (len(accepted), len(accepted) + 1)

    jwts = login_jwts(shared.ob, mark)
    assert jwts and set(jwts) == {rotated}, "the refresh did not log in with the rotated token"


# ---- Vault outage (background scenario) ---------------------------------------------------

def test_vault_outage_serves_valid_credentials_then_errors_then_recovers(outage):
    assert outage is not None
    outage.join(timeout=240)
    assert not outage.is_alive(), f"scenario still running: {outage.notes}"
    if outage.error is not None:
        raise AssertionError(f"timeline {outage.notes}") from outage.error
    for step in ("refresh failed, still serving", "refused after expiry", "serve recovered"):
        assert step in outage.notes, outage.notes
    print(f"outage timeline (s): {outage.notes}")


# ---- listening, configuration errors ------------------------------------------------------

@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_listen_and_sigint(iamra_bin, openbao, shared, tmp_path):
    srv = Serve(iamra_bin, tmp_path / "v6", openbao, shared.fake,
                openbao.write_sa_token(tmp_path / "sa" / "token"), host="::1", creds_file=False)
    try:
        srv.start()
        assert srv.base.startswith("http://[::1]:")
        r = srv.get("/healthz")
        assert r.status_code == 200 and r.text == "ok\n"
        srv.wait_ready(30)
        r = srv.creds()
        assert r.status_code == 200, r.text
        body = r.json()
        issued_by_key(shared.fake, body["AccessKeyId"])
        # IMDS is off without --imds.
        assert srv.http.put(srv.url("/latest/api/token"), timeout=5,
                            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
                            ).status_code == 404
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(timeout=5) == 0, srv.stderr[-2000:]
    finally:
        srv.stop()


def test_nothing_to_serve_is_a_usage_error(run_bin, tmp_path):
    proc = run_bin(["serve", "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN,
                    "--role-arn", ROLE_ARN, "--endpoint", "http://127.0.0.1:9",
                    "--vault-addr", "http://127.0.0.1:9", "--vault-role", "r",
                    "--pki-role", "p", "--termination-log", tmp_path / "termination-log",
                    "--listen", f"127.0.0.1:{free_port()}"], timeout=20)
    assert_error(proc, "nothing to serve", exit_code=EXIT_USAGE)


def test_listen_address_in_use_is_a_usage_error(run_bin, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_bin(["serve", "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN,
                        "--role-arn", ROLE_ARN, "--endpoint", "http://127.0.0.1:9",
                        "--vault-addr", "http://127.0.0.1:9", "--vault-role", "r",
                        "--pki-role", "p", "--termination-log", tmp_path / "termination-log",
                        "--auth-token-file", tmp_path / "token",
                        "--listen", f"127.0.0.1:{port}"], timeout=20)
    assert_error(proc, "cannot listen", exit_code=EXIT_USAGE)


def test_credentials_file_only(iamra_bin, openbao, shared, tmp_path):
    """Without --auth-token-file the ECS endpoint is off (404 JSON); the file is still kept."""
    srv = Serve(iamra_bin, tmp_path / "fileonly", openbao, shared.fake,
                openbao.write_sa_token(tmp_path / "sa" / "token"), token=False)
    try:
        srv.start()
        srv.wait_ready(30)
        body = assert_error_json(srv.creds(token=None), 404)
        assert body["code"] == "NotEnabled"
        cp = configparser.RawConfigParser()
        cp.read_string(srv.creds_file.read_text())
        issued = issued_by_key(shared.fake, cp.get("default", "aws_access_key_id"))
        assert cp.get("default", "aws_secret_access_key") == issued["secretAccessKey"]
        assert stat.S_IMODE(srv.creds_file.stat().st_mode) == 0o600
    finally:
        assert srv.stop() == 0, srv.stderr[-2000:]


def test_sigterm_while_vault_is_unreachable(iamra_bin, openbao, shared, tmp_path):
    """A sidecar stuck retrying Vault still stops at once; it was never ready."""
    class Nowhere:                          # an OpenBao look-alike where nothing listens
        addr, k8s_role, pki_role, fixed_cn = (f"http://127.0.0.1:{free_port()}",
                                              openbao.k8s_role, openbao.pki_role,
                                              openbao.fixed_cn)
    srv = Serve(iamra_bin, tmp_path / "novault", Nowhere, shared.fake,
                openbao.write_sa_token(tmp_path / "sa" / "token"), timeout="2m")
    try:
        srv.start()
        time.sleep(1.5)
        assert srv.get("/readyz").status_code == 503
        assert_error_json(srv.creds(), 503)
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=5) == 0, srv.stderr[-2000:]
        assert time.monotonic() - start < 5
        assert not srv.creds_file.exists()
    finally:
        srv.stop()


# ---- shutdown and the log (last: they end the shared serve) -------------------------------

def test_sigterm_exits_zero_promptly(shared):
    assert shared.get("/healthz").status_code == 200
    idle = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=10)   # kept alive
    idle.request("GET", "/healthz")
    assert idle.getresponse().read() == b"ok\n"
    start = time.monotonic()
    shared.proc.send_signal(signal.SIGTERM)
    rc = shared.proc.wait(timeout=5)
    idle.close()
    assert rc == 0, shared.stderr[-2000:]
    assert time.monotonic() - start < 5
    assert "shutting down" in shared.stderr
    with pytest.raises(requests.ConnectionError):
        shared.get("/healthz", timeout=2)


def test_no_secret_in_the_debug_log(shared, openbao_session):
    log = shared.stderr
    assert "DEBUG" in log and "credentials refreshed" in log, log[-2000:]
    assert shared.stdout == ""
    secrets = secrets_of(shared.fake) + [shared.token]
    for jwt in shared.sa_jwts:
        secrets += [jwt, jwt.split(".")[2]]
    secrets += shared.imds_tokens
    vault_tokens = [t["client_token"] for t in openbao_session.issued_tokens(shared.vault_mark)]
    assert vault_tokens, "serve never logged in to Vault?"
    assert_no_secrets(log, secrets + vault_tokens)


def test_health_listen_serves_only_health(iamra_bin, openbao, shared, tmp_path):
    """--health-listen: a second address for the kubelet's probes, with health and metrics only."""
    health_port = free_port()
    srv = Serve(iamra_bin, tmp_path / "health", openbao, shared.fake,
                openbao.write_sa_token(tmp_path / "sa" / "token"), creds_file=False,
                extra=("--health-listen", f"127.0.0.1:{health_port}"))
    try:
        srv.start()
        health = f"http://127.0.0.1:{health_port}"
        srv.wait_ready(30)
        assert srv.http.get(health + "/healthz", timeout=5).text == "ok\n"
        assert srv.http.get(health + "/readyz", timeout=5).status_code == 200
        assert "iamra_refreshes_total" in srv.http.get(health + "/metrics", timeout=5).text
        token = srv.token
        r = srv.http.get(health + "/v1/credentials", headers={"Authorization": token}, timeout=5)
        assert r.status_code == 404
        assert srv.http.put(health + "/latest/api/token", timeout=5,
                            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
                            ).status_code == 404
        assert srv.creds().status_code == 200
    finally:
        srv.stop()


def test_restart_keeps_the_auth_token(iamra_bin, openbao, shared, tmp_path):
    """A client given the token in AWS_CONTAINER_AUTHORIZATION_TOKEN survives a sidecar restart."""
    work = tmp_path / "restart"
    sa = openbao.write_sa_token(tmp_path / "sa" / "token")
    first = Serve(iamra_bin, work, openbao, shared.fake, sa, creds_file=False)
    try:
        first.start()
        first.wait_ready(30)
        token = first.token
        assert first.creds(token=token).status_code == 200
    finally:
        first.stop()
    second = Serve(iamra_bin, work, openbao, shared.fake, sa, creds_file=False)
    try:
        second.start()
        second.wait_ready(30)
        assert second.token == token
        assert second.creds(token=token).status_code == 200
    finally:
        second.stop()
    # A damaged token file is replaced by a new token, not trusted.
    (work / "run" / "token").write_text("not-a-token\n")
    third = Serve(iamra_bin, work, openbao, shared.fake, sa, creds_file=False)
    try:
        third.start()
        third.wait_ready(30)
        assert third.token != token and len(third.token) == 64
        assert third.creds(token=token).status_code == 403
    finally:
        third.stop()
