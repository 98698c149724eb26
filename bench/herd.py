#!/usr/bin/env python3
"""The herd: N concurrent ``iamra-bootstrap init`` runs against ONE persistent OpenBao (not part
of CI; see bench/README.md, "The herd").

What a pod start costs Vault, measured rather than guessed:

* OpenBao runs as ``bao server`` with **raft** storage on disk (OpenBao 2.x has no ``file``
  backend; the in-memory ``-dev`` mode would hide every storage write), one node, Shamir 1/1,
  telemetry on (``sys/metrics``), a file audit device (HMAC'd, as in production). It is
  configured by ``vault/configure.sh`` (kubernetes auth through the fake TokenReview API,
  PKI ``pki_int/{sign,issue}/bootstrapper``), and reconfigured by it between scenarios
  (``TOKEN_TYPE``, ``PKI_NO_STORE``, ``PKI_GENERATE_LEASE``).
* The fake TokenReview API and the verifying fake Roles Anywhere run in their own Python
  processes (their own GIL), with TCP_NODELAY and a listen backlog of 4096 (a stock
  ``http.server`` listens with a backlog of 5: a herd would otherwise measure SYN retransmits
  of the fakes, not Vault).
* Each pod is a separate ``init`` process (``os.posix_spawn``) with its own freshly minted
  ServiceAccount token file (payments/bootstrapper, audience ``openbao``) and its own
  credentials file, ``--log-format json``, no ``--timeout`` (the default, 2m).

Per scenario it reports: spawn spread, time to ready per pod (spawn -> exit) p50/p99/max and for
the whole herd (first spawn -> last exit), failures, Vault requests per pod by path (audit log;
requests refused by a rate-limit quota never reach the audit log, so 429s are counted from the
pods' own retry warnings and from ``vault.quota.rate_limit.violation``), storage writes per pod
(telemetry deltas: ``vault.barrier.put``/``delete`` = logical writes, ``vault.raft.apply`` = raft
log entries committed to disk, ``vault.raft_storage.put``/``delete``), Vault CPU per pod, TCP
connections per pod (distinct ``remote_port`` in the audit log), and what is left behind
(service-token accessors, leases under ``auth/kubernetes/login`` and ``pki_int/``, stored
certificates).

A batch token cannot be revoked: a binary that still calls ``revoke-self`` with one makes one
extra request that fails (HTTP 400) and logs a warning. Those are counted apart (``revoke`` column
and "revoke warnings"), never as failures; the failure count is exit code, credentials file and
Roles Anywhere verdicts only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN  # noqa: E402
from support.k8s import DEFAULT_ISSUER, SAKeys  # noqa: E402
from support.openbao import OpenBao, free_port, terminate  # noqa: E402

DEFAULT_BIN = ROOT / "target/x86_64-unknown-linux-musl/release/iamra-bootstrap"
RESULTS = ROOT / "bench" / "results.md"
STORE = ROOT / "bench" / "herd-results.json"   # every scenario's latest figures, per N

# scenario name -> (token type, pki mode, configure.sh overrides, quota)
SCENARIOS = {
    "service-sign": ("service", "sign", {}, False),
    "batch-sign": ("batch", "sign", {}, False),
    "service-issue": ("service", "issue", {}, False),
    "batch-issue": ("batch", "issue", {}, False),
    # PKI roles as configure.sh wrote them before no_store (Vault's defaults): every
    # certificate stored; and with a lease per certificate on top.
    "service-sign-stored": ("service", "sign", {"PKI_NO_STORE": "false"}, False),
    "service-sign-leased": ("service", "sign",
                            {"PKI_NO_STORE": "false", "PKI_GENERATE_LEASE": "true"}, False),
    "service-sign-keep": ("service", "sign", {}, False),   # init --keep-vault-token
    "service-sign-quota": ("service", "sign", {}, True),
    "batch-sign-quota": ("batch", "sign", {}, True),
    # the same quota, with enable_rate_limit_response_headers: 429s carry Retry-After
    "batch-sign-quota-ra": ("batch", "sign", {}, "headers"),
}
DEFAULT_SCENARIOS = ["service-sign", "batch-sign", "service-sign-quota", "batch-sign-quota"]
METRICS = {
    "barrier_put": "vault_barrier_put_count",
    "barrier_delete": "vault_barrier_delete_count",
    "raft_apply": "vault_raft_apply",
    "raft_put": "vault_raft_storage_put_count",
    "raft_delete": "vault_raft_storage_delete_count",
    "quota_violations": "vault_quota_rate_limit_violation",
    "token_create": "vault_token_create_count",
}

_children: list[subprocess.Popen] = []
_workdirs: list[pathlib.Path] = []


def track(proc: subprocess.Popen) -> None:
    """Remember a server we started: stopped in ``main``'s finally, and listed in
    ``$IAMRA_HERD_PIDFILE`` so bench/herd.sh's trap can stop it if this driver dies."""
    _children.append(proc)
    pidfile = os.environ.get("IAMRA_HERD_PIDFILE")
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{proc.pid}\n")


def log(msg: str) -> None:
    print(f"herd: {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    """Percentile with linear interpolation between ranks (as bench/run.py)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def loadavg() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the fakes, each in its own process ------------------------------------------------------

class _Tuned:
    """A socketserver with a deep listen backlog and TCP_NODELAY on accepted sockets."""
    request_queue_size = 4096

    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


def serve_fake(argv: list[str]) -> int:
    """``herd.py --serve-fake {tokenreview|rolesanywhere} ARGS``: the fake's own main, tuned."""
    kind, rest = argv[0], argv[1:]
    if kind == "tokenreview":
        import fakes.tokenreview as m
        m.ThreadingHTTPServer = type("TunedThreadingHTTPServer", (_Tuned, m.ThreadingHTTPServer), {})
        return m._main(rest)
    import fakes.rolesanywhere as m
    for name in ("_Server", "_Server6"):
        setattr(m, name, type(f"Tuned{name}", (_Tuned, getattr(m, name)), {}))
    return m.main(rest)


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on {port} after {timeout}s")


def start_fake(kind: str, args: list[str], port: int, logfile: pathlib.Path) -> subprocess.Popen:
    with open(logfile, "ab") as f:
        proc = subprocess.Popen([sys.executable, str(pathlib.Path(__file__).resolve()),
                                 "--serve-fake", kind, "--listen", f"127.0.0.1:{port}", *args],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    track(proc)
    wait_port(port, proc, f"fake {kind}")
    return proc


class TokenReviewProc:
    """What ``OpenBao.configure_env`` needs of a TokenReview fake: ``url``, ``reviewer_token``."""

    def __init__(self, url: str, reviewer_token: str):
        self.url, self.reviewer_token = url, reviewer_token


# ---- OpenBao with raft storage ---------------------------------------------------------------

_ROOT_SENTINEL = object()


class PersistentBao(OpenBao):
    """``bao server`` with raft storage, telemetry and a file audit device; initialised and
    unsealed through the API. Reuses the test support's configure/api/mint helpers."""

    def start(self, wait: bool = True) -> "PersistentBao":
        data = self.dir / "raft"
        data.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "server.hcl"
        cfg.write_text(
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "herd"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.api_port}"\n'
            f'  cluster_address = "127.0.0.1:{self.api_port + 1}"\n  tls_disable = true\n}}\n'
            f'api_addr = "http://127.0.0.1:{self.api_port}"\n'
            f'cluster_addr = "http://127.0.0.1:{self.api_port + 1}"\n'
            'telemetry {\n  prometheus_retention_time = "24h"\n  disable_hostname = true\n}\n'
            # OpenBao enables audit devices from the config only; HMAC'd, as in production.
            f'audit "file" "file" {{\n  options {{\n    file_path = "{self.audit_path}"\n  }}\n}}\n')
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(home)
        with open(self.log_path, "ab") as f:
            self.proc = subprocess.Popen([str(self.bao), "server", f"-config={cfg}",
                                          "-log-level=warn"],
                                         stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        track(self.proc)
        wait_port(self.api_port, self.proc, "bao server")
        r = self.api("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token=None)
        assert r.status_code == 200, r.text
        init = r.json()
        self.root_token, self.unseal_key = init["root_token"], init["keys_base64"][0]
        self.unseal()
        deadline = time.monotonic() + 60
        while self.api("GET", "sys/health", token=None).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("bao server not active after 60 s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)

    def api(self, method, path, body=None, token=_ROOT_SENTINEL, **kw):
        kw.setdefault("timeout", 120)  # a busy shared machine, not a slow Vault
        return super().api(method, path, body,
                           token=self.root_token if token is _ROOT_SENTINEL else token, **kw)

    def metrics(self) -> dict[str, float]:
        r = self.api("GET", "sys/metrics", params={"format": "prometheus"})
        assert r.status_code == 200, r.text
        values: dict[str, float] = {}
        for line in r.text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            try:
                values[base] = values.get(base, 0.0) + float(value)
            except ValueError:
                pass
        return {k: values.get(m, 0.0) for k, m in METRICS.items()}

    def count_list(self, path: str) -> int:
        r = self.api("LIST", path)
        if r.status_code == 404:
            return 0
        assert r.status_code == 200, (path, r.text)
        return len(r.json()["data"]["keys"])

    def leases(self, prefix: str) -> int:
        """Leases under ``prefix`` (walks sys/leases/lookup)."""
        total, todo = 0, [prefix.rstrip("/") + "/"]
        while todo:
            p = todo.pop()
            r = self.api("LIST", f"sys/leases/lookup/{p}")
            if r.status_code == 404:
                continue
            assert r.status_code == 200, (p, r.text)
            for k in r.json()["data"]["keys"]:
                if k.endswith("/"):
                    todo.append(p + k)
                else:
                    total += 1
        return total

    def left_behind(self) -> dict[str, int]:
        return {"accessors": self.count_list("auth/token/accessors"),
                "login_leases": self.leases(f"auth/{self.k8s_mount}/login"),
                "pki_leases": self.leases(self.pki_mount),
                "certs": self.count_list(f"{self.pki_mount}/certs")}


# ---- one herd ----------------------------------------------------------------------------------

def ts(text: str) -> float:
    """RFC 3339 (nanoseconds allowed) -> Unix seconds."""
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float("0." + (m.group(2) or "0"))


def peak_per_second(times: list[float]) -> int:
    """The most events in any 1 s window starting at an event."""
    times, best, j = sorted(times), 0, 0
    for i, t in enumerate(times):
        while times[j] < t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def parse_pod_log(text: str) -> dict:
    steps: dict[str, float] = {}
    final, warns, errors, retries, login_ts, t429, slept = None, [], [], {}, None, [], 0.0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            errors.append(line)
            continue
        if "step" in rec and "duration_ms" in rec:
            steps[rec["step"]] = float(rec["duration_ms"])
            if rec["step"] == "login" and rec.get("timestamp"):
                login_ts = ts(rec["timestamp"])
        if "total_ms" in rec:
            final = rec
        if rec.get("level") == "WARN":
            warns.append(rec)
            if "will retry" in rec.get("message", ""):
                m = re.search(r"HTTP (\d{3})", rec.get("error", ""))
                key = m.group(1) if m else "connect"
                retries[key] = retries.get(key, 0) + 1
                if key == "429" and rec.get("timestamp"):
                    t429.append(ts(rec["timestamp"]))
                slept += float(rec.get("retry_in_ms") or 0)
        elif rec.get("level") == "ERROR":
            errors.append(rec)
    return {"steps": steps, "final": final, "warns": warns, "errors": errors, "retries": retries,
            "login_ts": login_ts, "t429": t429, "slept_ms": slept}


def read_ini_key(path: pathlib.Path, key: str) -> str | None:
    try:
        for line in path.read_text().splitlines():
            k, sep, v = line.partition("=")
            if sep and k.strip() == key:
                return v.strip()
    except OSError:
        return None
    return None


def classify(path: str) -> str:
    if path.endswith("/login"):
        return "login"
    if "/sign/" in path:
        return "sign"
    if "/issue/" in path:
        return "issue"
    if path == "auth/token/revoke-self":
        return "revoke"
    if path.startswith("sys/"):
        return "harness"   # the driver's own scrapes and lookups, not a pod's
    return "other"


class Env:
    def __init__(self, tmp: pathlib.Path, binary: pathlib.Path):
        self.tmp, self.binary = tmp, binary
        self.sa_keys = SAKeys()
        reviewer = self.sa_keys.mint("kube-system", "openbao-token-reviewer", aud=DEFAULT_ISSUER,
                                     ttl=86400)
        (tmp / "sa.pub").write_bytes(self.sa_keys.public_pem)
        (tmp / "reviewer.jwt").write_text(reviewer)
        tr_port = free_port()
        log("starting the fake TokenReview API")
        self.tr_proc = start_fake("tokenreview", [
            "--public-key", str(tmp / "sa.pub"), "--reviewer-token-file", str(tmp / "reviewer.jwt")],
            tr_port, tmp / "tokenreview.log")
        self.tokenreview = TokenReviewProc(f"http://127.0.0.1:{tr_port}", reviewer)
        log("starting OpenBao (bao server, raft storage) and running vault/configure.sh")
        self.ob = PersistentBao(tmp / "openbao", self.sa_keys, self.tokenreview)
        self.ob.start()
        self.configure({})
        ra_port = free_port()
        anchor = tmp / "anchor.pem"
        anchor.write_bytes(self.ob.root_ca_pem)
        log("starting the fake Roles Anywhere")
        self.ra_proc = start_fake("rolesanywhere", ["--trust-anchor", str(anchor),
                                                    "--region", REGION],
                                  ra_port, tmp / "rolesanywhere.log")
        self.ra_url = f"http://127.0.0.1:{ra_port}"

    def configure(self, overrides: dict[str, str]) -> None:
        self.ob.configure(AUTH_METHODS="kubernetes", K8S_BOUND_SA_NAMES=self.ob.sa_name,
                          **overrides)

    def ra_stats(self) -> dict:
        import requests
        return requests.get(f"{self.ra_url}/_fake/stats", timeout=120).json()

    def stop(self) -> None:
        for p in reversed(_children):
            terminate(p)


def run_herd(env: Env, n: int, name: str, a) -> dict:
    token_type, mode, overrides, quota = SCENARIOS[name]
    ob = env.ob
    log(f"[{name}] N={n}: configure.sh TOKEN_TYPE={token_type} "
        + " ".join(f"{k}={v}" for k, v in overrides.items()))
    env.configure({"TOKEN_TYPE": token_type, **overrides})
    # One login first so the ServiceAccount's entity exists (a one-time cost per account, not
    # per pod start); then the pods' own files.
    r = ob.api("POST", f"auth/{ob.k8s_mount}/login",
               {"role": ob.k8s_role, "jwt": ob.mint_sa_token(ttl=3600)}, token=None)
    assert r.status_code == 200, r.text
    if r.json()["auth"].get("token_type") == "service":
        ob.api("POST", "auth/token/revoke", {"token": r.json()["auth"]["client_token"]})
    d = env.tmp / f"{name}-{n}"
    k = 1
    while d.exists():
        k += 1
        d = env.tmp / f"{name}-{n}-{k}"
    d.mkdir()
    pods = []
    for i in range(n):
        p = d / f"pod{i}"
        p.mkdir()
        tok = p / "token"
        tok.write_text(ob.mint_sa_token(ttl=3600))
        pods.append({"i": i, "dir": p, "creds": p / "credentials", "stderr": p / "stderr",
                     "token": tok})
    common = [str(env.binary), "init", "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN,
              "--role-arn", ROLE_ARN, "--endpoint", env.ra_url, "--vault-addr", ob.addr,
              "--vault-role", ob.k8s_role, "--pki-mount", ob.pki_mount, "--pki-role", ob.pki_role,
              "--pki-mode", mode, "--common-name", ob.fixed_cn, "--log-format", "json",
              "--termination-log", "/dev/null"]
    if a.timeout:
        common += ["--timeout", a.timeout]
    if name.endswith("-keep"):
        common.append("--keep-vault-token")
    child_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("VAULT_", "BAO_", "IAMRA_", "AWS_"))}
    ra_before = env.ra_stats()
    left_before = ob.left_behind()
    if quota:
        ob.set_rate_limit("", a.quota_rate, name="herd", block_interval=None)
        if quota != "headers" and not a.quota_headers:
            ob.api("POST", "sys/quotas/config", {"enable_rate_limit_response_headers": False})
    time.sleep(1.0)
    m0 = ob.metrics()
    audit0 = ob.audit_mark()
    cpu0 = proc_cpu_s(ob.proc.pid)
    load0 = loadavg()

    # Reap in a thread (os.wait4 releases the GIL) while the main thread spawns.
    by_pid: dict[int, dict] = {}
    done = threading.Event()
    lock = threading.Lock()
    remaining = [n]
    others: list[tuple[int, int]] = []

    def reaper():
        while True:
            try:
                pid, status, ru = os.wait4(-1, 0)
            except ChildProcessError:
                time.sleep(0.01)
                continue
            t = time.perf_counter()
            with lock:
                pod = by_pid.get(pid)
            if pod is None:
                others.append((pid, status))
                continue
            pod.update(end=t, rc=os.waitstatus_to_exitcode(status),
                       cpu_ms=(ru.ru_utime + ru.ru_stime) * 1e3)
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
                return

    rt = threading.Thread(target=reaper, daemon=True)
    rt.start()
    # The herd starts at once: each pod is first a /bin/sh blocked reading a pipe (fd 3), which
    # execs init when the driver closes the pipe's write end (EOF for every reader at the same
    # instant). Spawning 500 processes on a busy 2-CPU machine takes seconds; that time is
    # before t0 and reported apart ("spawn").
    devnull = os.open(os.devnull, os.O_RDWR)
    gate_r, gate_w = os.pipe()
    ts_spawn0 = time.perf_counter()
    for pod in pods:
        fd = os.open(pod["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        argv = ["/bin/sh", "-c", 'read _ <&3; exec "$@" 3<&-', "pod"] + common + [
            "--service-account-token-file", str(pod["token"]),
            "--credentials-file", str(pod["creds"])]
        with lock:
            pid = os.posix_spawn("/bin/sh", argv, child_env,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                               (os.POSIX_SPAWN_DUP2, devnull, 1),
                                               (os.POSIX_SPAWN_DUP2, fd, 2),
                                               (os.POSIX_SPAWN_DUP2, gate_r, 3)])
            by_pid[pid] = pod
        os.close(fd)
    spawn_s = time.perf_counter() - ts_spawn0
    os.close(devnull)
    os.close(gate_r)
    time.sleep(0.5)  # let the last shells reach their read
    t0, t0_wall = time.perf_counter(), time.time()
    os.close(gate_w)  # go
    for pod in pods:
        pod["spawn"], pod["spawn_wall"] = t0, t0_wall
    t_spawned = t0 + spawn_s
    if not done.wait(timeout=a.herd_timeout):
        log(f"[{name}] pods still running after {a.herd_timeout}s: killing them")
        for pid, pod in by_pid.items():
            if "end" not in pod:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        done.wait(timeout=30)
    t_end = max(p.get("end", time.perf_counter()) for p in pods)
    cpu1 = proc_cpu_s(ob.proc.pid)
    load1 = loadavg()
    time.sleep(2.0)  # let revocations and the audit log settle
    audit = ob.audit_entries(audit0)
    m1 = ob.metrics()
    if quota:
        ob.clear_rate_limit("herd")
    left_after = ob.left_behind()
    ra_after = env.ra_stats()
    if name.endswith("-keep"):  # measured; now clear the kept tokens for the next scenario
        r = ob.api("PUT", f"sys/leases/revoke-prefix/auth/{ob.k8s_mount}/login",
                   params={"sync": "true"}, timeout=120)
        assert r.status_code in (200, 204), r.text

    # Per pod.
    failures, revoke_warn, other_warn, retries = [], 0, [], {}
    keys = set()
    for pod in pods:
        parsed = parse_pod_log(pod["stderr"].read_text(errors="replace"))
        pod.update(parsed)
        for k, v in parsed["retries"].items():
            retries[k] = retries.get(k, 0) + v
        for w in parsed["warns"]:
            if "could not revoke" in w.get("message", ""):
                revoke_warn += 1
            elif "will retry" not in w.get("message", ""):
                other_warn.append(w)
        key = read_ini_key(pod["creds"], "aws_access_key_id")
        why = None
        if pod.get("rc") != 0:
            why = f"exit {pod.get('rc')}: {(parsed['errors'] or ['?'])[-1]}"
        elif not key or not read_ini_key(pod["creds"], "aws_session_token"):
            why = "no credentials in the file"
        elif key in keys:
            why = f"access key {key} seen twice"
        if why:
            failures.append(f"pod {pod['i']}: {why}")
        keys.add(key)
    ra_accepted = ra_after["accepted"] - ra_before["accepted"]
    ra_rejected = ra_after["rejected"] - ra_before["rejected"]
    if ra_accepted != n:
        failures.append(f"Roles Anywhere accepted {ra_accepted} sessions for {n} pods")
    if others:
        failures.append(f"reaped processes that were not pods: {others}")

    # Vault's side.
    reqs: dict[str, int] = {}
    errs: dict[str, int] = {}
    served: list[float] = []
    other_paths: set[str] = set()
    ports = set()
    for e in audit:
        if e.get("type") != "response":
            continue
        req = e.get("request") or {}
        kind = classify(req.get("path", ""))
        if kind == "harness":
            continue
        reqs[kind] = reqs.get(kind, 0) + 1
        if e.get("time"):
            served.append(ts(e["time"]))
        if kind == "other":
            other_paths.add(req.get("path"))
        if e.get("error") or "error" in ((e.get("response") or {}).get("data") or {}):
            errs[kind] = errs.get(kind, 0) + 1
        if req.get("remote_port"):
            ports.add(req["remote_port"])
    delta = {k: m1[k] - m0[k] for k in m0}
    walls = [(p["end"] - p["spawn"]) * 1e3 for p in pods if "end" in p]
    totals = [p["final"]["total_ms"] for p in pods if p.get("final")]
    # Time to first request: spawn -> the login request left (the login line's timestamp
    # minus its duration; both clocks are the system's wall clock).
    first_req = [(p["login_ts"] - p["steps"]["login"] / 1e3 - p["spawn_wall"]) * 1e3
                 for p in pods if p.get("login_ts") and "login" in p["steps"]]
    step_p50 = {s: pct([p["steps"][s] for p in pods if s in p["steps"]], 50)
                for s in ("login", "keygen", "sign", "create_session", "revoke", "write")}
    step_p99 = {s: pct([p["steps"][s] for p in pods if s in p["steps"]], 99)
                for s in ("login", "keygen", "sign", "create_session", "revoke", "write")}
    res = {
        "name": name, "n": n, "token_type": token_type, "mode": mode, "overrides": overrides,
        "quota": quota, "spawn_spread_ms": spawn_s * 1e3,
        "all_ready_s": (t_end - t0), "wall_p50": pct(walls, 50), "wall_p99": pct(walls, 99),
        "wall_max": max(walls) if walls else float("nan"),
        "total_p50": pct(totals, 50), "total_p99": pct(totals, 99),
        "cpu_p50": pct([p["cpu_ms"] for p in pods if "cpu_ms" in p], 50),
        "step_p50": step_p50, "step_p99": step_p99,
        "first_req_p50": pct(first_req, 50), "first_req_p99": pct(first_req, 99),
        "first_req_max": max(first_req) if first_req else float("nan"),
        "failures": failures, "revoke_warnings": revoke_warn, "other_warnings": other_warn,
        "retries": retries, "requests": reqs, "request_errors": errs,
        "other_paths": sorted(other_paths),
        "served_peak_1s": peak_per_second(served),
        "slept_p50": pct([p["slept_ms"] for p in pods], 50),
        "slept_p99": pct([p["slept_ms"] for p in pods], 99),
        "rejected_peak_1s": peak_per_second([t for p in pods for t in p["t429"]]),
        "served_span_s": (max(served) - min(served)) if served else 0.0,
        "connections": len(ports), "delta": delta, "vault_cpu_s": cpu1 - cpu0,
        "left_before": left_before, "left_after": left_after,
        "ra_accepted": ra_accepted, "ra_rejected": ra_rejected, "load": (load0, load1),
        "attempts_p99": pct([1 + sum(p["retries"].values()) for p in pods], 99),
        "attempts_max": max(1 + sum(p["retries"].values()) for p in pods),
    }
    log(f"[{name}] N={n}: all ready in {res['all_ready_s']:.2f}s, p50 {res['wall_p50']:.0f} ms, "
        f"p99 {res['wall_p99']:.0f} ms, failures {len(failures)}, requests {reqs}, "
        f"barrier put/delete {delta['barrier_put']:.0f}/{delta['barrier_delete']:.0f}, "
        f"raft applies {delta['raft_apply']:.0f}, retries {retries}, "
        f"left {left_after}")
    if not a.keep_tmp:
        import shutil
        shutil.rmtree(d, ignore_errors=True)
    return res


# ---- report -----------------------------------------------------------------------------------

def f1(x: float) -> str:
    return f"{x:.1f}"


def per(x: float, n: int) -> str:
    v = x / n
    return f"{v:.2f}" if v not in (0, int(v)) else f"{int(v)}"


def report(results: list[dict], n: int) -> str:
    """The ``N = n`` section: every stored scenario for this N, each row naming its run."""
    runs: list[dict] = []
    for r in results:
        if r["run"] not in runs:
            runs.append(r["run"])
    runs.sort(key=lambda x: x["when"])
    num = {json.dumps(x, sort_keys=True): i + 1 for i, x in enumerate(runs)}
    for r in results:
        r["run_no"] = num[json.dumps(r["run"], sort_keys=True)]
    out = [f"### N = {n}\n"]
    for i, x in enumerate(runs):
        out.append(f"- run {i + 1}: {x['when']}, `{x['cmd']}`, binary {x['binary']} (git "
                   f"{x['git']}); load average (1/5/15 min) {x['load_start']} at the start, "
                   f"{x['load_end']} at the end")
    out.append("")
    rows = []
    for r in results:
        quota = "—"
        if r["quota"]:
            quota = f"{r['run']['quota_rate']:g} req/s"
            if r["quota"] == "headers" or r["run"]["quota_headers"]:
                quota += ", Retry-After"
        rows.append([f"`{r['name']}`", str(r["run_no"]), quota, f"{r['all_ready_s']:.2f} s",
                     f"{r['wall_p50']:.0f} ms", f"{r['wall_p99']:.0f} ms",
                     f"{r['wall_max']:.0f} ms", str(len(r["failures"])),
                     f"{r['spawn_spread_ms'] / 1e3:.1f} s", f"{r['load'][0]} → {r['load'][1]}"])
    out.append(table(["scenario", "run", "quota", "all ready (start → last exit)",
                      "p50 per pod (start → exit)", "p99", "max", "failures",
                      "spawning the N waiting pods (before the start)",
                      "load 1/5/15 before → after"], rows))
    out.append("")
    rows = []
    for r in results:
        q = r["requests"]
        d = r["delta"]
        lb, la = r["left_before"], r["left_after"]
        total_req = sum(q.values())
        rows.append([
            f"`{r['name']}`", per(total_req, n),
            " / ".join(per(q.get(k, 0), n) for k in ("login", "sign", "issue", "revoke")),
            per(sum(r["request_errors"].values()), n),
            per(d["barrier_put"] + d["barrier_delete"], n),
            f"{per(d['barrier_put'], n)} / {per(d['barrier_delete'], n)}",
            per(d["raft_apply"], n),
            per(r["retries"].get("429", 0), n) + f" ({int(d['quota_violations'])} at Vault)",
            f"{r['connections'] / n:.2f}",
            f"{r['vault_cpu_s'] * 1e3 / n:.1f} ms",
            f"{la['accessors'] - lb['accessors']} / {la['login_leases'] - lb['login_leases']}",
            f"{la['certs'] - lb['certs']} / {la['pki_leases'] - lb['pki_leases']}",
        ])
    out.append(table(["scenario", "Vault requests / pod", "login / sign / issue / revoke",
                      "of which failed", "storage writes / pod", "put / delete",
                      "raft log entries / pod", "429s / pod (total counted by Vault)",
                      "TCP connections / pod", "Vault CPU / pod",
                      "tokens / token leases left", "certs stored / PKI leases left"], rows))
    out.append("")
    rows = []
    for r in results:
        sp, s9 = r["step_p50"], r["step_p99"]
        rows.append([f"`{r['name']}`"] + [f"{sp[s]:.1f} / {s9[s]:.1f}" if sp[s] == sp[s] else "—"
                                          for s in ("login", "sign", "create_session", "revoke")]
                    + [f"{r['first_req_p50']:.0f} / {r['first_req_p99']:.0f}",
                       f"{r['total_p50']:.0f} / {r['total_p99']:.0f}",
                       f"{r['cpu_p50']:.1f}", f"{r['attempts_p99']:.0f} / {r['attempts_max']}",
                       str(r["revoke_warnings"])])
    out.append(table(["scenario (ms, p50 / p99)", "login", "sign / issue", "create_session",
                      "revoke", "start → first Vault request", "total_ms", "pod CPU p50 (ms)",
                      "HTTP attempts p99 / max", "revoke warnings"], rows))
    qrows = [[f"`{r['name']}`", str(sum(r["requests"].values())), f"{r['served_span_s']:.1f} s",
              str(r["served_peak_1s"]), str(r["retries"].get("429", 0)),
              str(r["rejected_peak_1s"]), f"{r['attempts_p99']:.0f} / {r['attempts_max']}",
              f"{r.get('slept_p50', 0) / 1e3:.1f} / {r.get('slept_p99', 0) / 1e3:.1f} s",
              f"{r['all_ready_s']:.1f} s"] for r in results if r["quota"]]
    if qrows:
        out += ["", table(["with the quota", "requests served", "first → last served",
                           "most served in 1 s", "429s (pods' retry warnings)",
                           "most 429s in 1 s", "HTTP attempts per pod p99 / max",
                           "backing off per pod p50 / p99 (sum of retry_in_ms)",
                           "all ready"], qrows)]
    notes = []
    for r in results:
        for f in r["failures"][:10]:
            notes.append(f"- `{r['name']}`: {f}")
        if r["other_paths"]:
            notes.append(f"- `{r['name']}`: other Vault paths: {', '.join(r['other_paths'])}")
        for w in r["other_warnings"][:5]:
            notes.append(f"- `{r['name']}`: warning {json.dumps(w)[:300]}")
    if notes:
        out += ["", "Failures and unexpected warnings:", ""] + notes
    return "\n".join(out) + "\n"


def update_results(section: str, n: int) -> None:
    """Replace (or append) the ``N = n`` part of the herd section of bench/results.md."""
    begin, end = f"<!-- herd N={n} begin -->", f"<!-- herd N={n} end -->"
    text = RESULTS.read_text() if RESULTS.exists() else ""
    block = f"{begin}\n{section}{end}"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        text = pre + block + rest.split(end, 1)[1]
    else:
        head = "<!-- herd begin -->"
        if head not in text:
            text = text.rstrip("\n") + f"\n\n{head}\n## The herd: N concurrent `init` against one " \
                   "persistent OpenBao (`bench/herd.sh`)\n\nSee bench/README.md, \"The herd\", " \
                   "for the set-up and what each column means.\n\n<!-- herd end -->\n"
        parts = {}
        body = text.split(head, 1)[1].split("<!-- herd end -->", 1)[0]
        for m in re.finditer(r"<!-- herd N=(\d+) begin -->.*?<!-- herd N=\1 end -->", body, re.S):
            parts[int(m.group(1))] = m.group(0)
        parts[n] = block
        intro = re.split(r"<!-- herd N=\d+ begin -->", body, 1)[0].rstrip("\n")
        new_body = intro + "\n\n" + "\n\n".join(parts[k] for k in sorted(parts)) + "\n\n"
        pre, post = text.split(head, 1)
        text = pre + head + new_body + "<!-- herd end -->" + post.split("<!-- herd end -->", 1)[1]
    RESULTS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-fake"]:
        return serve_fake(argv[1:])
    p = argparse.ArgumentParser(description="N concurrent init runs against one OpenBao")
    p.add_argument("n", type=int, help="pods (concurrent init processes)")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help=f"comma-separated, or 'all': {', '.join(SCENARIOS)}")
    p.add_argument("--quota-rate", type=float, default=100.0, help="rate-limit quota, req/s")
    p.add_argument("--quota-headers", action="store_true",
                   help="enable_rate_limit_response_headers (Retry-After on 429s)")
    p.add_argument("--timeout", default=None, help="--timeout of init (default: its own, 2m)")
    p.add_argument("--herd-timeout", type=float, default=300, help="kill pods after this (s)")
    p.add_argument("--warmup", type=int, default=20, help="pods of an unreported first herd")
    p.add_argument("--no-results", action="store_true", help="do not update bench/results.md")
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--render-only", action="store_true",
                   help="only re-render the N section of bench/results.md from herd-results.json")
    a = p.parse_args(argv)
    if a.render_only:
        store = json.loads(STORE.read_text())[str(a.n)]
        section = report([store[s] for s in SCENARIOS if s in store], a.n)
        bao = next(iter(store.values()))["run"].get("openbao", "")
        update_results(section + f"\n{os.cpu_count()} CPUs, Linux {platform.release()}, {bao}.\n", a.n)
        return 0
    if not 1 <= a.n <= 5000:
        p.error("N must be 1..5000")
    names = list(SCENARIOS) if a.scenarios == "all" else a.scenarios.split(",")
    for s in names:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    binary = pathlib.Path(os.environ.get("IAMRA_BIN") or DEFAULT_BIN)
    if not binary.exists():
        p.error(f"no binary at {binary} (build it or set IAMRA_BIN)")
    cmd = os.environ.get("IAMRA_HERD_CMD") or "bench/herd.sh " + " ".join(shlex.quote(x) for x in argv)
    facts = [["load average at start", loadavg()]]
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="iamra-herd-"))
    _workdirs.append(tmp)
    env = None
    results = []
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src", "Cargo.toml",
                       "Cargo.lock"], capture_output=True, text=True).stdout.strip():
        git += " + uncommitted changes in src/"
    binary_name = f"`{binary.relative_to(ROOT)}`" if binary.is_relative_to(ROOT) else f"`{binary}`"
    bao_version = ""

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        env = Env(tmp, binary)
        bao_version = subprocess.run([str(env.ob.bao), "version"], capture_output=True,
                                     text=True).stdout.strip()
        if a.warmup:
            # The first herd after OpenBao starts is slower (caches, raft, page cache): warm up,
            # unmeasured, with the first scenario.
            log(f"warm-up: {a.warmup} pods, not reported")
            run_herd(env, a.warmup, names[0], a)
        for name in names:
            results.append(run_herd(env, a.n, name, a))
    finally:
        if env is not None:
            env.stop()
        for c in _children:
            terminate(c)
        if not a.keep_tmp:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"work folder kept: {tmp}")
    run = {"when": started, "cmd": cmd, "git": git, "binary": binary_name,
           "load_start": facts[0][1], "load_end": loadavg(), "quota_rate": a.quota_rate,
           "quota_headers": a.quota_headers, "openbao": bao_version}
    for r in results:
        r["run"] = run
    if a.no_results:
        sys.stdout.write(report(results, a.n))
        return 1 if sum(len(r["failures"]) for r in results) else 0
    store = json.loads(STORE.read_text()) if STORE.exists() else {}
    for r in results:
        store.setdefault(str(a.n), {})[r["name"]] = r
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True, default=list) + "\n")
    kept = [store[str(a.n)][s] for s in SCENARIOS if s in store[str(a.n)]]
    section = report(kept, a.n)
    section += (f"\n{os.cpu_count()} CPUs, Linux {platform.release()}, {bao_version}.\n")
    sys.stdout.write(section)
    update_results(section, a.n)
    log(f"bench/results.md updated (N={a.n}; data in {STORE.relative_to(ROOT)})")
    bad = sum(len(r["failures"]) for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
