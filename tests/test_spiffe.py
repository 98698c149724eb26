"""The SPIFFE source end to end: X.509-SVIDs from the Workload API (``--spiffe-endpoint`` or
``SPIFFE_ENDPOINT_SOCKET``) exchanged for Roles Anywhere sessions.

Peers: ``fakes/workload_api.py`` (a Workload API server of our own, from the SPIFFE spec and
its ``workload.proto``; SVIDs with the URI SAN ``spiffe://example.org/ns/team-a/sa/app`` from a
test CA) and the verifying fake Roles Anywhere trusting that CA and, where a test asks, checking
the leaf's URI SAN as a trust policy on ``x509SAN/URI`` would.

Contract under test (``docs/spiffe.md``, ``src/spiffe/mod.rs``, ``src/source/spiffe.rs``):

* every call carries ``workload.spiffe.io: true``; the SVID's leaf and its intermediates are
  sent (``X-Amz-X509``, ``X-Amz-X509-Chain``), never the bundle; the first SVID by default, else
  the one ``--spiffe-id`` / ``--spiffe-hint`` names (exit 2 naming what is offered when none);
* an absent agent, a refused socket and ``PermissionDenied`` are retried within ``--timeout``,
  then one line and exit 3; ``InvalidArgument`` is not retried; a malformed SVID: exit 3;
* ``serve`` and ``update`` keep the stream open: a rotation pushed by the agent makes a new
  session at once, signed with the new SVID; a cut stream is opened again; a withdrawn SVID
  (``PermissionDenied``) makes ``serve`` answer 503 until a usable SVID arrives.
"""
from __future__ import annotations

import configparser
import contextlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import clean_env
from fakes.rolesanywhere import FakeRolesAnywhere
from fakes.workload_api import DEFAULT_ID, WorkloadApi
from support.cli import EXIT_USAGE, EXIT_VAULT, assert_error, credential_process_json
from support.fake_ra import REGION, ra_flags
from support.openbao import free_port, terminate
from support.pki import make_ca, make_intermediate

OTHER_ID = "spiffe://example.org/ns/team-a/sa/batch"


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spiffe_ca():
    return make_ca("SPIRE test root")


@pytest.fixture
def ra(spiffe_ca):
    fake = FakeRolesAnywhere([spiffe_ca.cert_pem], region=REGION)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def agent(spiffe_ca):
    api = WorkloadApi(spiffe_ca)
    api.set_svids([api.issue()])
    with api:
        yield api


def accepted(fake: FakeRolesAnywhere) -> list:
    return [r for r in fake.requests if r.verdict == "accepted"]


def sent_chain(rec) -> list[str]:
    value = rec.headers.get("x-amz-x509-chain")
    return value.split(",") if value else []


def cp(run_bin, fake, *args, env=None, timeout=60):
    return run_bin(["credential-process", "--no-cache", *ra_flags(fake), *args], env=env,
                   timeout=timeout)


# ---- credential-process and init ------------------------------------------------------------

@pytest.mark.parametrize("how", ["env", "flag", "flag-short-unix", "tcp"])
def test_credential_process_gets_the_svid_session(run_bin, ra, spiffe_ca, how):
    address = "tcp" if how == "tcp" else None
    with WorkloadApi(spiffe_ca, address) as api:
        svid = api.issue()
        api.set_svids([svid])
        ra.require_uri_san = DEFAULT_ID
        if how == "env":
            p = cp(run_bin, ra, env={"SPIFFE_ENDPOINT_SOCKET": api.uri})
        elif how == "flag-short-unix":
            p = cp(run_bin, ra, "--spiffe-endpoint", f"unix:{api.socket_path}")
        else:
            p = cp(run_bin, ra, "--spiffe-endpoint", api.uri)
        assert p.returncode == 0, p.stderr
        (rec,) = accepted(ra)
        assert p.stdout == credential_process_json(rec.credentials)
        assert rec.serial == str(svid.serial)
        assert rec.uri_sans == [DEFAULT_ID]
        assert sent_chain(rec) == []  # the bundle (the CA) is not sent
        assert [c.get("workload.spiffe.io") for c in api.calls] == ["true"]


def test_intermediates_are_sent_and_the_bundle_is_not(run_bin, ra, spiffe_ca, agent):
    inter = make_intermediate(spiffe_ca, "SPIRE intermediate")
    svid = agent.issue(chain=(inter,), issuer=inter)
    agent.set_svids([svid])
    p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri)
    assert p.returncode == 0, p.stderr
    (rec,) = accepted(ra)
    assert rec.serial == str(svid.serial)
    import base64
    assert [base64.b64decode(c) for c in sent_chain(rec)] == [inter.cert_der]


def test_a_trust_policy_on_another_spiffe_id_refuses(run_bin, ra, agent):
    ra.require_uri_san = OTHER_ID
    p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri)
    assert_error(p, exit_code=4)
    assert "lacks " + OTHER_ID in ra.requests[-1].reason


def test_init_writes_the_credentials_file(run_bin, ra, agent, tmp_path):
    creds_file = tmp_path / "aws" / "credentials"
    for env, flags in (({"SPIFFE_ENDPOINT_SOCKET": agent.uri}, []),
                       ({}, ["--spiffe-endpoint", agent.uri])):
        p = run_bin(["init", *ra_flags(ra), "--credentials-file", creds_file,
                     "--termination-log", tmp_path / "tl", *flags], env=env)
        assert p.returncode == 0, p.stderr
        issued = accepted(ra)[-1].credentials
        ini = configparser.ConfigParser()
        ini.read(creds_file)
        assert ini["default"]["aws_access_key_id"] == issued["accessKeyId"]
        assert ini["default"]["aws_session_token"] == issued["sessionToken"]
    assert len(accepted(ra)) == 2
    # Nothing but the credentials file was written: no SVID, no key on disk.
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["aws/credentials"], written


def test_two_svids_first_by_default_else_by_id_or_hint(run_bin, ra, agent):
    first = agent.issue(DEFAULT_ID, hint="internal")
    second = agent.issue(OTHER_ID, hint="external")
    agent.set_svids([first, second])
    for flags, want in (([], first), (["--spiffe-id", OTHER_ID], second),
                        (["--spiffe-hint", "external"], second),
                        (["--spiffe-id", DEFAULT_ID], first)):
        p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri, *flags)
        assert p.returncode == 0, p.stderr
        assert accepted(ra)[-1].serial == str(want.serial), flags
    count = len(ra.requests)
    p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri, "--spiffe-id",
           "spiffe://example.org/ns/team-b/sa/app")
    assert_error(p, "no SVID", "--spiffe-id spiffe://example.org/ns/team-b/sa/app",
                 DEFAULT_ID, OTHER_ID, '"external"', exit_code=EXIT_USAGE)
    assert len(ra.requests) == count


@pytest.mark.parametrize("flags, needle", [
    (["--spiffe-endpoint", "unix:relative.sock"], "absolute"),
    (["--spiffe-endpoint", "unix://host/agent.sock"], "authority"),
    (["--spiffe-endpoint", "tcp://localhost:1"], "IP address"),
    (["--spiffe-endpoint", "unix:///a.sock", "--spiffe-id", "example.org/app"],
     "not a SPIFFE ID"),
    (["--spiffe-id", DEFAULT_ID], "--spiffe-endpoint"),
])
def test_bad_flags_exit_2_before_any_call(run_bin, ra, flags, needle):
    assert_error(cp(run_bin, ra, *flags), needle, exit_code=EXIT_USAGE)
    assert ra.requests == []


def test_agent_absent_is_retried_then_one_line_exit_3(run_bin, ra, tmp_path):
    t = time.monotonic()
    p = cp(run_bin, ra, "--spiffe-endpoint", f"unix://{tmp_path}/agent.sock", "--timeout", "2s")
    elapsed = time.monotonic() - t
    assert_error(p, "no SPIFFE Workload API", "agent.sock", "--timeout", exit_code=EXIT_VAULT)
    assert 1.5 <= elapsed < 10, elapsed


def test_socket_refused_exit_3(run_bin, ra, tmp_path):
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # bound, never listening: connect() is refused
    try:
        p = cp(run_bin, ra, "--spiffe-endpoint", f"unix://{path}", "--timeout", "1s")
    finally:
        s.close()
    assert_error(p, "refused", exit_code=EXIT_VAULT)


def test_not_attested_is_retried_within_the_timeout(run_bin, ra, agent):
    agent.deny("no identity issued")
    p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri, "--timeout", "2s")
    assert_error(p, "PermissionDenied", "no identity issued", "not attested",
                 exit_code=EXIT_VAULT)
    assert len(agent.calls) >= 3  # retried with backoff
    # Attested one second into a run: the retries get the SVID.
    threading.Timer(1.0, agent.allow).start()
    p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri, "--timeout", "20s")
    assert p.returncode == 0, p.stderr
    assert accepted(ra)[-1].serial == str(agent.served[0].serial)


def test_invalid_argument_is_not_retried(run_bin, ra, agent):
    agent.fail_with("INVALID_ARGUMENT", "malformed request")
    t = time.monotonic()
    p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri, "--timeout", "20s")
    assert_error(p, "InvalidArgument", "malformed request", exit_code=EXIT_VAULT)
    assert time.monotonic() - t < 5
    assert len(agent.calls) == 1


def test_agent_down_at_start_then_up(run_bin, ra, spiffe_ca, tmp_path):
    path = tmp_path / "agent.sock"
    api = WorkloadApi(spiffe_ca, str(path))
    api.set_svids([api.issue()])
    starter = threading.Timer(1.5, api.start)
    starter.start()
    try:
        t = time.monotonic()
        p = cp(run_bin, ra, "--spiffe-endpoint", f"unix://{path}", "--timeout", "30s")
        assert p.returncode == 0, p.stderr
        assert time.monotonic() - t >= 1.4
        assert accepted(ra)[-1].serial == str(api.served[0].serial)
    finally:
        starter.join()
        api.stop()


@pytest.mark.parametrize("raw, needle", [
    ({"x509_svid": b"not a certificate", "x509_svid_key": b"not a key"}, "not DER"),
    ("wrong-key", "does not match the private key"),
    ("no-key", "private key"),
])
def test_a_malformed_answer_exit_3(run_bin, ra, agent, raw, needle):
    good = agent.served[0].message(__import__("fakes.workload_api", fromlist=["stubs"])
                                   .stubs()[0], b"")
    if raw == "wrong-key":
        other = agent.issue().message(__import__("fakes.workload_api", fromlist=["stubs"])
                                      .stubs()[0], b"")
        raw = {"x509_svid": good.x509_svid, "x509_svid_key": other.x509_svid_key}
    elif raw == "no-key":
        raw = {"x509_svid": good.x509_svid, "x509_svid_key": b""}
    agent.set_raw([{"spiffe_id": DEFAULT_ID, "bundle": b"", **raw}])
    p = cp(run_bin, ra, "--spiffe-endpoint", agent.uri, "--timeout", "5s")
    assert_error(p, "unusable SVID", DEFAULT_ID, needle, exit_code=EXIT_VAULT)
    assert ra.requests == []


# ---- serve and update: the stream kept open -------------------------------------------------

class Serve:
    """One ``serve`` process on the SPIFFE source (ECS endpoint with a token)."""

    def __init__(self, iamra_bin, workdir, ra, agent, *extra, timeout="20s"):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token_file = self.dir / "token"
        self.log = self.dir / "serve.log"
        self.proc = subprocess.Popen(
            [str(iamra_bin), "serve", *ra_flags(ra), "--spiffe-endpoint", agent.uri,
             "--listen", f"127.0.0.1:{self.port}", "--auth-token-file", str(self.token_file),
             "--termination-log", str(self.dir / "tl"), "--timeout", timeout,
             "--log-level", "debug", *map(str, extra)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), stdin=subprocess.DEVNULL,
            env=clean_env(home=self.dir / "home"))

    def get(self, path, **kw):
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        kw.setdefault("timeout", 5)
        return requests.get(f"http://127.0.0.1:{self.port}{path}", **kw)

    def creds(self):
        return self.get("/v1/credentials", headers={"Authorization": self.token_file.read_text()})

    def wait(self, cond, what, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with contextlib.suppress(requests.ConnectionError, FileNotFoundError):
                if cond():
                    return
            time.sleep(0.1)
        raise AssertionError(f"{what} not within {timeout}s:\n{self.log.read_text()[-4000:]}")

    def stop(self):
        return terminate(self.proc)


@pytest.fixture
def serve(iamra_bin, tmp_path, ra, agent):
    started = []

    def start(*extra, **kw):
        s = Serve(iamra_bin, tmp_path / f"serve{len(started)}", ra, agent, *extra, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_serve_follows_two_rotations(serve, ra, agent):
    srv = serve()
    srv.wait(lambda: srv.creds().status_code == 200, "first credentials")
    serials = [str(agent.served[0].serial)]
    for _ in range(2):
        new = agent.rotate()
        serials.append(str(new[0].serial))
        # The push ends the wait at once: a session from the new SVID, long before the
        # 70 % refresh of a one-hour session.
        srv.wait(lambda: accepted(ra)[-1].serial == serials[-1], "a session from the rotated SVID")
        issued = accepted(ra)[-1].credentials
        srv.wait(lambda: srv.creds().json()["AccessKeyId"] == issued["accessKeyId"],
                 "the new credentials served")
    # Every session was signed with the SVID current at the time, in order, none twice.
    assert [r.serial for r in accepted(ra)] == serials
    body = srv.creds().json()
    from datetime import datetime, timezone
    expiry = datetime.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc)
    assert expiry > datetime.now(timezone.utc)
    assert len(agent.calls) == 1  # one stream, kept open


def test_serve_reopens_a_cut_stream(serve, ra, agent):
    srv = serve()
    srv.wait(lambda: srv.creds().status_code == 200, "first credentials")
    agent.cut()
    srv.wait(lambda: len(agent.calls) >= 2 and agent.open_streams == 1, "the stream reopened")
    # Still served meanwhile, and the reopened stream delivers the next rotation.
    assert srv.creds().status_code == 200
    new = agent.rotate()
    srv.wait(lambda: accepted(ra)[-1].serial == str(new[0].serial), "a session after the cut")


def test_serve_stops_using_a_withdrawn_svid(serve, ra, agent):
    srv = serve()
    srv.wait(lambda: srv.creds().status_code == 200, "first credentials")
    before = len(accepted(ra))
    agent.deny("entry deleted")
    srv.wait(lambda: srv.creds().status_code == 503, "503 once the SVID is withdrawn")
    assert srv.get("/readyz").status_code != 200
    time.sleep(1)
    assert len(accepted(ra)) == before  # no session from the withdrawn SVID
    agent.allow()
    new = agent.rotate()
    srv.wait(lambda: srv.creds().status_code == 200, "served again once an SVID is back")
    assert accepted(ra)[-1].serial == str(new[0].serial)


def test_serve_withdrawn_by_a_set_without_the_selected_svid(serve, ra, agent):
    other = agent.issue(OTHER_ID)
    agent.set_svids([agent.served[0], other])
    srv = serve("--spiffe-id", DEFAULT_ID)
    srv.wait(lambda: srv.creds().status_code == 200, "first credentials")
    agent.set_svids([other])
    srv.wait(lambda: srv.creds().status_code == 503, "503 once the SVID is gone from the set")
    assert all(r.serial != str(other.serial) for r in accepted(ra))


def test_update_rewrites_the_profile_at_each_rotation(iamra_bin, tmp_path, ra, agent):
    creds_file = tmp_path / "credentials"
    proc = subprocess.Popen(
        [str(iamra_bin), "update", *ra_flags(ra), "--spiffe-endpoint", agent.uri,
         "--credentials-file", str(creds_file), "--profile", "app"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "update.log").open("wb"),
        env=clean_env(home=tmp_path / "home"))
    try:
        def key_in_file():
            ini = configparser.ConfigParser()
            ini.read(creds_file)
            return ini["app"]["aws_access_key_id"] if ini.has_section("app") else None

        def wait(cond, what):
            end = time.monotonic() + 20
            while time.monotonic() < end:
                if cond():
                    return
                assert proc.poll() is None, (tmp_path / "update.log").read_text()
                time.sleep(0.1)
            raise AssertionError(f"{what}:\n{(tmp_path / 'update.log').read_text()[-3000:]}")

        wait(lambda: key_in_file() is not None, "the first profile")
        new = agent.rotate()
        wait(lambda: accepted(ra)[-1].serial == str(new[0].serial), "a session after rotation")
        wait(lambda: key_in_file() == accepted(ra)[-1].credentials["accessKeyId"],
             "the profile rewritten")
    finally:
        terminate(proc)


# ---- aws-spiffe-workload-helper's command lines ---------------------------------------------

def helper_flags(fake) -> list[str]:
    """The helper's required flags (it has no environment variables for them)."""
    return [a for a in ra_flags(fake)]


def test_x509_credential_process_alias(run_bin, ra, agent):
    p = run_bin(["x509-credential-process", *helper_flags(ra), "--workload-api-addr", agent.uri])
    assert p.returncode == 0, p.stderr
    (rec,) = accepted(ra)
    assert p.stdout == credential_process_json(rec.credentials)
    assert rec.serial == str(agent.served[0].serial)
    # SPIFFE_ENDPOINT_SOCKET when the flag is absent; no cache: a second session.
    p = run_bin(["x509-credential-process", *helper_flags(ra), "--session-duration", "900"],
                env={"SPIFFE_ENDPOINT_SOCKET": agent.uri})
    assert p.returncode == 0, p.stderr
    assert len(accepted(ra)) == 2 and accepted(ra)[-1].json["durationSeconds"] == 900
    p = run_bin(["x509-credential-process", *helper_flags(ra)])
    assert_error(p, "--workload-api-addr", "SPIFFE_ENDPOINT_SOCKET", exit_code=EXIT_USAGE)
    # The helper's required flags are required here too.
    p = run_bin(["x509-credential-process", "--workload-api-addr", agent.uri])
    assert_error(p, "missing --trust-anchor-arn", exit_code=EXIT_USAGE)


OTHER_PROFILE = "[other]\naws_access_key_id = AKIAOTHER\n"


@pytest.mark.parametrize("flags, existing, keeps_other, ok", [
    ([], OTHER_PROFILE, True, True),
    (["--replace"], OTHER_PROFILE, False, True),
    ([], b"\xff\xfe not text", None, False),
    (["--force"], b"\xff\xfe not text", False, True),
])
def test_x509_credential_file_oneshot(run_bin, ra, agent, tmp_path, flags, existing, keeps_other,
                                      ok):
    path = tmp_path / "aws" / "credentials"
    path.parent.mkdir()
    path.write_bytes(existing.encode() if isinstance(existing, str) else existing)
    p = run_bin(["x509-credential-file-oneshot", *helper_flags(ra), "--workload-api-addr",
                 agent.uri, "--aws-credentials-path", path, *flags])
    if not ok:  # logs at info as the helper does; the error is the last line
        assert p.returncode == 5, p.stderr
        assert p.stderr.splitlines()[-1].startswith("iamra-bootstrap: error: cannot write the "
                                                    "credentials file"), p.stderr
        assert path.read_bytes() == existing  # never a partial file
        return
    assert p.returncode == 0, p.stderr
    ini = configparser.ConfigParser()
    ini.read(path)
    assert ini["default"]["aws_access_key_id"] == accepted(ra)[-1].credentials["accessKeyId"]
    assert ini.has_section("other") == keeps_other
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_x509_credential_file_daemon_follows_rotations(iamra_bin, tmp_path, ra, agent):
    path = tmp_path / "credentials"
    proc = subprocess.Popen(
        [str(iamra_bin), "x509-credential-file", *helper_flags(ra), "--workload-api-addr",
         agent.uri, "--aws-credentials-path", str(path), "--replace"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "daemon.log").open("wb"),
        env=clean_env(home=tmp_path / "home"))
    try:
        def key_in_file():
            ini = configparser.ConfigParser()
            ini.read(path)
            return ini["default"]["aws_access_key_id"] if ini.has_section("default") else None

        for step in range(3):
            if step:
                agent.rotate()
            end = time.monotonic() + 20
            while not (accepted(ra) and accepted(ra)[-1].serial == str(agent.served[0].serial)
                       and key_in_file() == accepted(ra)[-1].credentials["accessKeyId"]):
                assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
                assert time.monotonic() < end, (tmp_path / "daemon.log").read_text()[-3000:]
                time.sleep(0.1)
        assert [r.serial for r in accepted(ra)] == [str(e[0].serial) for e in agent.history]
    finally:
        terminate(proc)


def test_a_missing_required_flag_is_named_on_the_one_line(run_bin, ra, tmp_path):
    """clap lists missing arguments on lines of their own; the one error line must keep them."""
    p = run_bin(["x509-credential-file-oneshot", *helper_flags(ra), "--workload-api-addr",
                 "unix:///nonexistent.sock"])
    assert_error(p, "required", "--aws-credentials-path", exit_code=EXIT_USAGE)
