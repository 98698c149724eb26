"""Every AWS SDK x every delivery mode, with real SDKs (issue 14).

Clients (``tests/support/sdk.py``): the AWS SDK for JavaScript v3, boto3, the AWS SDK for Rust
and AWS CLI v1, each a separate process using its own default credential chain, configured
only by environment variables as an application's would be. Delivery modes:

* ``file-init``: the credentials file written by ``init`` (``AWS_SHARED_CREDENTIALS_FILE``);
* ``file-serve``: the file ``serve --credentials-file`` keeps;
* ``process``: ``credential_process = iamra-bootstrap credential-process ...`` in the config file;
* ``ecs-token-file``: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``;
* ``ecs-token-var``: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``;
* ``imds``: IMDSv2 from ``serve --imds`` (``AWS_EC2_METADATA_SERVICE_ENDPOINT``);
  ``imds-slash``: the same endpoint written with a trailing slash.

Every client calls STS ``GetCallerIdentity`` on a local moto behind a recording front
(``tests/support/sts.py``), so the test sees the access key each SDK actually signed with: it
must be one the verifying fake Roles Anywhere issued, sent with its session token, unexpired when
signed. One fake trusts both the OpenBao PKI root (``init``, ``serve``) and the ``pki`` test root
(``credential-process`` with certificate files), so its ``.issued`` is the one oracle.

Also here: the JavaScript SDK's explicit providers (``fromContainerMetadata()`` ignores the token
file, ``fromHttp()`` reads it), which SDKs re-read a rewritten credentials file (none), a
``serve`` restart under clients holding the token in a variable, and the refresh scenario: short
sessions (the fake's ``set_lifetime``; ``--session-duration 900``) on the ECS endpoint and IMDS,
every client calling for longer than a session lives, and no call signed with an expired key.
The refresh scenario must outlive a whole session of the shortest kind its rules apply to
(11 min, see ``tests/support/sdk_refresh.py``): it runs in a background thread from the start of
the pytest session and is joined by its test here, so it overlaps the rest of the suite.
"""
from __future__ import annotations

import configparser
import pathlib
import secrets
import shlex
import stat
import subprocess
import time

import pytest

from conftest import clean_env
from fakes.rolesanywhere import FakeRolesAnywhere
from support import sdk
from support.fake_ra import REGION, ra_flags
from support.openbao import OpenBao
from support.sts import StsRecorder, check_calls, parse_expiration
from test_serve import Serve, start_openbao

MODES = ("file-init", "file-serve", "process", "ecs-token-file", "ecs-token-var", "imds",
         "imds-slash")


def need(kind: str) -> None:
    why = sdk.unavailable(kind)
    if why:
        pytest.skip(why)


def issued_map(*fakes: FakeRolesAnywhere) -> dict[str, dict]:
    return {c["accessKeyId"]: c for f in fakes for c in f.issued}


def file_key(path: pathlib.Path, profile: str = "default") -> str:
    cp = configparser.RawConfigParser()
    cp.read_string(path.read_text())
    return cp.get(profile, "aws_access_key_id")


def run_init(iamra_bin, ob: OpenBao, fake: FakeRolesAnywhere, sa: pathlib.Path,
             creds: pathlib.Path, home: pathlib.Path) -> None:
    proc = subprocess.run(
        [str(iamra_bin), "init", *ra_flags(fake), "--vault-addr", ob.addr,
         "--vault-role", ob.k8s_role, "--service-account-token-file", str(sa),
         "--pki-role", ob.pki_role, "--common-name", ob.fixed_cn,
         "--credentials-file", str(creds), "--termination-log", str(home / "termination-log"),
         "--timeout", "60s"],
        env=clean_env(home=home), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


class World:
    """What the matrix runs against: one fake, one moto front, one serve (ECS + IMDS + file),
    one ``init`` file and one ``credential_process`` config."""

    def __init__(self, iamra_bin, ob, pki, moto_sts, work: pathlib.Path):
        self.bin, self.ob, self.work = iamra_bin, ob, work
        self.fake = FakeRolesAnywhere([ob.root_ca_pem, pki.root.cert_pem], region=REGION)
        self.fake.start()
        self.sts = StsRecorder(moto_sts).start()
        self.sa = ob.write_sa_token(work / "sa" / "token")
        self.srv = Serve(iamra_bin, work / "serve", ob, self.fake, self.sa, imds=True)
        self.srv.start()
        self.srv.wait_ready(60)
        self.init_file = work / "init" / "credentials"
        run_init(iamra_bin, ob, self.fake, self.sa, self.init_file, work / "init")
        leaf = pki.leaf("p256")
        command = shlex.join([str(iamra_bin), "credential-process", *ra_flags(self.fake),
                              "--certificate", str(leaf.cert_pem),
                              "--private-key", str(leaf.key("pkcs8"))])
        self.process_config = work / "process" / "config"
        self.process_config.parent.mkdir(parents=True)
        self.process_config.write_text(f"[default]\ncredential_process = {command}\n")
        self.n = 0

    def stop(self) -> None:
        self.srv.stop()
        self.sts.stop()
        self.fake.stop()

    def mode_env(self, mode: str, srv: Serve | None = None) -> dict[str, str]:
        srv = srv or self.srv
        return {
            "file-init": {"AWS_SHARED_CREDENTIALS_FILE": str(self.init_file)},
            "file-serve": {"AWS_SHARED_CREDENTIALS_FILE": str(srv.creds_file)},
            "process": {"AWS_CONFIG_FILE": str(self.process_config)},
            "ecs-token-file": {"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url("/v1/credentials"),
                               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(srv.token_file)},
            "ecs-token-var": {"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url("/v1/credentials"),
                              "AWS_CONTAINER_AUTHORIZATION_TOKEN": srv.token},
            "imds": {"AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.base},
            "imds-slash": {"AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.base + "/"},
        }[mode]

    def client(self, kind: str, name: str, aws: dict[str, str], provider: str | None = None):
        """A new client process of ``kind``; returns (client, recorder tag)."""
        self.n += 1
        tag = f"{name}-{self.n}"
        env = sdk.client_env(self.work / "clients" / tag, **aws)
        return sdk.client(kind, self.sts.endpoint(tag), env,
                          self.work / "clients" / f"{tag}.log", provider=provider), tag


@pytest.fixture(scope="module")
def world(iamra_bin, openbao_session, pki, moto_sts, tmp_path_factory):
    w = World(iamra_bin, openbao_session, pki, moto_sts, tmp_path_factory.mktemp("sdk-matrix"))
    try:
        yield w
    finally:
        w.stop()


# ---- the matrix ---------------------------------------------------------------------------

def client_params(kinds=sdk.CLIENTS) -> list:
    """``kinds`` as parameters, those that cannot run here skipped (before any fixture)."""
    return [pytest.param(k, marks=pytest.mark.skipif(bool(sdk.unavailable(k)),
                                                     reason=sdk.unavailable(k) or ""))
            for k in kinds]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", client_params())
def test_matrix(world, kind, mode):
    c, tag = world.client(kind, f"{kind}-{mode}", world.mode_env(mode))
    try:
        answers = [c.call(), c.call()]            # the second from the SDK's cache, or not
    finally:
        c.close()
    for a in answers:
        assert a["ok"], f"{kind} via {mode}: {a['error']}\n{c.log.read_text()[-3000:]}"
        assert a["arn"].startswith("arn:aws:sts::"), a
    keys = check_calls(world.sts.calls(tag), issued_map(world.fake))
    assert len(keys) == 2
    if mode == "file-init":
        assert set(keys) == {file_key(world.init_file)}
    elif mode == "file-serve":
        # serve may rewrite the file between the two calls; the SDK read it once.
        assert len(set(keys)) == 1


# ---- the JavaScript SDK's explicit providers ----------------------------------------------

def js_answer(world, provider: str, mode: str) -> tuple[dict, str]:
    c, tag = world.client("js", f"js-{provider}-{mode}", world.mode_env(mode), provider=provider)
    try:
        return c.call(), tag
    finally:
        c.close()


def test_js_from_container_metadata_ignores_the_token_file(world):
    """``fromContainerMetadata()`` (@smithy/credential-provider-imds) sends only
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN``: with the token file alone it is refused."""
    need("js")
    refused_before = world.srv.metrics()["iamra_credential_requests_refused_total"]
    answer, tag = js_answer(world, "fromContainerMetadata", "ecs-token-file")
    assert not answer["ok"], answer
    assert world.sts.calls(tag) == []
    assert world.srv.metrics()["iamra_credential_requests_refused_total"] > refused_before
    # ... while the token variable works with it.
    answer, tag = js_answer(world, "fromContainerMetadata", "ecs-token-var")
    assert answer["ok"], answer
    check_calls(world.sts.calls(tag), issued_map(world.fake))


@pytest.mark.parametrize("provider", ["fromHttp", "fromNodeProviderChain"])
def test_js_from_http_and_the_default_chain_read_the_token_file(world, provider):
    need("js")
    answer, tag = js_answer(world, provider, "ecs-token-file")
    assert answer["ok"], answer
    check_calls(world.sts.calls(tag), issued_map(world.fake))


# ---- a rewritten credentials file ---------------------------------------------------------

@pytest.mark.parametrize("kind", client_params(["js", "boto3", "rust"]))
def test_long_lived_clients_never_reread_the_credentials_file(world, kind, tmp_path):
    """What docs/sdks.md says: a client that has read the file keeps its keys, so pods that
    outlive a session need the ECS endpoint, not the file."""
    need(kind)
    path = tmp_path / "credentials"
    run_init(world.bin, world.ob, world.fake, world.sa, path, tmp_path / "init1")
    c, tag = world.client(kind, f"{kind}-reread", {"AWS_SHARED_CREDENTIALS_FILE": str(path)})
    try:
        assert c.call()["ok"]
        first = file_key(path)
        run_init(world.bin, world.ob, world.fake, world.sa, path, tmp_path / "init2")
        assert file_key(path) != first
        assert c.call()["ok"]
    finally:
        c.close()
    keys = check_calls(world.sts.calls(tag), issued_map(world.fake))
    assert keys == [first, first], "the SDK re-read the file: update docs/sdks.md"


# ---- a serve restart ----------------------------------------------------------------------

def test_restart_keeps_token_variable_and_imds_clients_working(world, iamra_bin,
                                                              openbao_session, tmp_path):
    """A sidecar restart under running clients. ``serve --auth-token-file`` reuses the valid
    token it finds, so a client given it in ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (a variable
    cannot be re-read) keeps working, and so does one started afterwards with the same value;
    IMDS clients holding a token of the previous process get a new one (the Rust SDK keeps a
    token for its granted TTL: see ``src/serve/imds.rs``). Sessions live 60 s, so every client
    must fetch from the restarted sidecar within the polling window. Not boto3 over IMDS: its
    fetcher stretches any expiry closer than 10 minutes and may not ask again for 5 minutes
    (the refresh scenario covers it with sessions long enough for that); it asks for a new token
    whenever it does ask."""
    fake = FakeRolesAnywhere([openbao_session.root_ca_pem], region=REGION).start()
    fake.set_lifetime(60)
    srv = Serve(iamra_bin, tmp_path / "serve", openbao_session, fake, world.sa, imds=True,
                creds_file=False)
    clients = []
    try:
        srv.start()
        srv.wait_ready(60)
        token = srv.token
        kinds = [k for k in ("js", "boto3", "rust") if not sdk.unavailable(k)]
        assert kinds, "no long-lived SDK client available"
        for kind in kinds:
            for mode in ("ecs-token-var", "imds"):
                if (kind, mode) == ("boto3", "imds"):
                    continue
                c, tag = world.client(kind, f"{kind}-{mode}-restart", world.mode_env(mode, srv))
                clients.append((f"{kind}/{mode}", c, tag))
                answer = c.call()
                assert answer["ok"], f"{kind}/{mode}: {answer['error']}"
        port, before = srv.port, fake.count
        srv.stop()
        _start_on(srv, port)
        srv.wait_ready(60)
        assert srv.token == token, "the restart replaced the token file"
        assert fake.count > before
        # A client started after the restart with the token it was given before.
        for kind in kinds:
            c, tag = world.client(kind, f"{kind}-after-restart", world.mode_env("ecs-token-var",
                                                                                   srv))
            clients.append((f"new {kind}/ecs-token-var", c, tag))
        renewed = {k["accessKeyId"] for k in fake.issued[before:]}
        deadline = time.time() + 90
        pending = list(clients)
        while pending and time.time() < deadline:
            for item in list(pending):
                name, c, tag = item
                answer = c.call()
                assert answer["ok"], f"{name} after the restart: {answer['error']}"
                renewed = {k["accessKeyId"] for k in fake.issued[before:]}
                if world.sts.calls(tag)[-1].access_key in renewed:
                    pending.remove(item)
            time.sleep(2)
        assert not pending, f"never used the restarted sidecar's keys: {[n for n, _, _ in pending]}"
        issued = issued_map(fake)
        for name, c, tag in clients:
            check_calls(world.sts.calls(tag), issued)
    finally:
        for _, c, _ in clients:
            c.close()
        srv.stop()
        fake.stop()


def test_a_token_made_beforehand_is_kept_for_a_token_variable_client(world, iamra_bin,
                                                                      openbao_session, tmp_path):
    """The recipe of docs/sdks.md for one token on both sides: the token exists before the sidecar
    starts (a Kubernetes Secret, ``defaultMode: 0400``), serve uses it as it is, and the app
    gets the same value in ``AWS_CONTAINER_AUTHORIZATION_TOKEN``."""
    token = secrets.token_hex(32)
    srv = Serve(iamra_bin, tmp_path / "serve", openbao_session, world.fake, world.sa,
                creds_file=False)
    srv.token_file.parent.mkdir(parents=True)
    srv.token_file.write_text(token)
    srv.token_file.chmod(0o400)
    before = srv.token_file.stat()
    clients = []
    try:
        srv.start()
        srv.wait_ready(60)
        after = srv.token_file.stat()
        assert srv.token == token
        assert stat.S_IMODE(after.st_mode) == 0o400, "serve changed a private token file"
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        for kind in [k for k in ("js", "boto3", "rust", "cli") if not sdk.unavailable(k)]:
            c, tag = world.client(kind, f"{kind}-premade-token",
                                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url("/v1/credentials"),
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": token})
            clients.append(c)
            answer = c.call()
            assert answer["ok"], f"{kind}: {answer['error']}"
            check_calls(world.sts.calls(tag), issued_map(world.fake))
    finally:
        for c in clients:
            c.close()
        srv.stop()


def _start_on(srv: Serve, port: int) -> None:
    """Start ``srv`` again on the same port (a restarted sidecar keeps its address)."""
    with open(srv.stderr_path, "ab") as err, open(srv.stdout_path, "ab") as out:
        srv.port = port
        srv.proc = subprocess.Popen([str(srv.bin), *srv.args()], stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, env=clean_env(home=srv.dir / "home"))
    srv.wait_up()


# ---- refresh ------------------------------------------------------------------------------

def test_refresh_no_call_signed_with_an_expired_key(sdk_refresh):
    """Every client on the ECS endpoint and on IMDS, over more than one short session: no call
    failed, every call was signed with an issued key unexpired at signing time, and each client
    moved on to a renewed key before the first one expired."""
    r = sdk_refresh
    assert r is not None
    r.join(timeout=r.deadline - time.time() + 120)
    assert not r.is_alive(), "refresh scenario still running"
    if r.error is not None:
        raise r.error
    assert r.tags, f"no client available: {r.skipped}"
    issued = issued_map(r.fake)
    first_expiry = parse_expiration(r.fake.issued[0]["expiration"])
    problems = []
    for name, tag in sorted(r.tags.items()):
        failed = [a for _, a in r.results[tag] if not a["ok"]]
        if failed:
            problems.append(f"{name}: {len(failed)} failed calls, e.g. {failed[0]['error'][:300]}")
            continue
        calls = r.sts.calls(tag)
        try:
            keys = check_calls(calls, issued)
        except AssertionError as e:
            problems.append(f"{name}: {e}")
            continue
        if len(set(keys)) < 2 or calls[-1].time <= first_expiry:
            problems.append(f"{name}: never outlived the first session ({len(set(keys))} keys)")
    assert not problems, "\n".join(problems)
    print(f"refresh: {len(r.tags)} clients over {r.elapsed:.0f} s, {r.fake.count} sessions; "
          f"skipped {r.skipped}")
