"""pytest plugin: the SDK refresh scenario, run in the background for the whole session.

``sdk_refresh`` (session, autouse): when ``test_refresh_no_call_signed_with_an_expired_key``
(``tests/test_sdk_matrix.py``) is selected, starts :class:`Refresh` at the first test of the
session and yields it; the test joins it. Otherwise yields ``None`` and starts nothing.

The scenario: its own OpenBao, a fake Roles Anywhere whose sessions live ``LIFETIME`` s
(``set_lifetime``; serve asks for 900 s, AWS's shortest), one ``serve`` with the ECS endpoint
(token file) and ``--imds``, and every available SDK client (``tests/support/sdk.py``) polling STS
through each of the two for longer than one session lives: until the first session has been
expired ``AFTER_EXPIRY`` s and the client has moved to a renewed key, or ``2 * LIFETIME``.

Why ``LIFETIME`` is 11 minutes: serve's real schedule applies from 10 minutes up (below that,
which AWS never issues, the margin is a quarter of the lifetime), and the margin matters here:
botocore's IMDS fetcher may keep a key for up to 5 minutes without asking again, so a test with
shorter sessions would only test the test-only rule. Exactly 10 minutes is not enough: the
fake's expiry is in whole seconds, so serve sees 599.x s and applies the short rule (a run with
600 s saw boto3 keep its first IMDS key past expiry). It is waited out in the background,
alongside the rest of the suite.
"""
from __future__ import annotations

import pathlib
import threading
import time

import pytest

from support import sdk
from support.sts import StsRecorder, parse_expiration

LIFETIME = 660
AFTER_EXPIRY = 20
TEST_NAME = "test_refresh_no_call_signed_with_an_expired_key"
# Seconds between calls; the CLI starts a Python process per call, so it calls less often.
CALL_EVERY = {"js": 2.0, "boto3": 2.0, "rust": 2.0, "cli": 30.0}


class Refresh(threading.Thread):
    def __init__(self, iamra_bin, work: pathlib.Path, sa_keys, tokenreview, moto_sts):
        super().__init__(name="sdk-refresh", daemon=True)
        self.bin, self.work, self.sa_keys, self.tokenreview = iamra_bin, work, sa_keys, tokenreview
        self.moto_sts = moto_sts
        self.abort = threading.Event()
        self.error: BaseException | None = None
        self.results: dict[str, list] = {}      # recorder tag -> [(time, answer)]
        self.tags: dict[str, str] = {}          # "kind/mode" -> recorder tag
        self.skipped: dict[str, str] = {}
        self.started = time.time()
        self.deadline = self.started + 2 * LIFETIME + 120
        self.elapsed = 0.0
        self.ob = self.fake = self.srv = self.sts = None

    def run(self) -> None:
        try:
            self.scenario()
        except BaseException as e:  # re-raised by the test
            self.error = e
        finally:
            self.elapsed = time.time() - self.started
            for part in (self.srv, self.sts, self.fake, self.ob):
                if part is not None:
                    part.stop()

    def scenario(self) -> None:
        from fakes.rolesanywhere import FakeRolesAnywhere
        from support.fake_ra import REGION
        from test_serve import Serve, start_openbao

        self.ob = ob = start_openbao(self.work / "openbao", self.sa_keys, self.tokenreview)
        self.fake = fake = FakeRolesAnywhere([ob.root_ca_pem], region=REGION).start()
        fake.set_lifetime(LIFETIME)
        self.sts = StsRecorder(self.moto_sts).start()
        sa = ob.write_sa_token(self.work / "sa" / "token")
        self.srv = srv = Serve(self.bin, self.work / "serve", ob, fake, sa, imds=True,
                               creds_file=False, extra=("--session-duration", "900"))
        srv.start()
        srv.wait_ready(90)
        envs = {
            "ecs": {"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url("/v1/credentials"),
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(srv.token_file)},
            "imds": {"AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.base},
        }
        until = parse_expiration(fake.issued[0]["expiration"]) + AFTER_EXPIRY
        deadline = time.time() + 2 * LIFETIME
        threads = []
        for kind in sdk.CLIENTS:
            why = sdk.unavailable(kind)
            if why:
                self.skipped[kind] = why
                continue
            for mode, aws in envs.items():
                tag = f"refresh-{kind}-{mode}"
                self.tags[f"{kind}/{mode}"] = tag
                self.results[tag] = []
                t = threading.Thread(target=self.poll, name=tag, daemon=True,
                                     args=(kind, tag, aws, until, deadline))
                threads.append(t)
                t.start()
        for t in threads:
            t.join()

    def poll(self, kind: str, tag: str, aws: dict, until: float, deadline: float) -> None:
        env = sdk.client_env(self.work / "clients" / tag, **aws)
        try:
            c = sdk.client(kind, self.sts.endpoint(tag), env, self.work / "clients" / f"{tag}.log")
        except AssertionError as e:
            self.results[tag].append((time.time(), {"ok": False, "error": str(e)}))
            return
        try:
            while not self.abort.is_set():
                self.results[tag].append((time.time(), c.call()))
                keys = {x.access_key for x in self.sts.calls(tag)}
                if (time.time() > until and len(keys) >= 2) or time.time() > deadline:
                    return
                self.abort.wait(CALL_EVERY[kind])
        finally:
            c.close()


@pytest.fixture(scope="session", autouse=True)
def sdk_refresh(request, tmp_path_factory):
    selected = any(getattr(item, "originalname", item.name) == TEST_NAME
                   for item in request.session.items)
    if not selected:
        yield None
        return
    # Asked for only here, so sessions without the test start none of them.
    fixtures = [request.getfixturevalue(name)
                for name in ("iamra_bin", "sa_keys", "tokenreview", "moto_sts")]
    scenario = Refresh(fixtures[0], tmp_path_factory.mktemp("sdk-refresh"), *fixtures[1:])
    scenario.start()
    try:
        yield scenario
    finally:
        scenario.abort.set()
        scenario.join(timeout=60)


def pytest_collection_finish(session):
    """Say which client versions the SDK matrix runs, when it runs (the docs do not type them)."""
    if any(item.path.name == "test_sdk_matrix.py" for item in session.items):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            got = sdk.versions()
            reporter.write_line("SDK matrix clients: " + (", ".join(
                f"{name} {version}" for name, version in got.items()) or "none installed"))
