#!/usr/bin/env python3
"""Vault HA under a herd: N concurrent ``iamra-bootstrap init`` runs while the active Vault node
is killed or steps down (not part of CI; see bench/README.md, "Vault HA").

The set-up is what an operator runs, on 127.0.0.1:

* a real 3-node OpenBao cluster: ``bao server`` with raft storage, a config per node
  (``retry_join`` to the others), Shamir 1/1, initialised and unsealed through the API, and
  configured by ``vault/configure.sh`` (kubernetes auth through the fake TokenReview API, PKI
  ``pki_int/sign/bootstrapper``, service tokens with ``token_ttl`` 10m);
* Debian's haproxy, in the foreground with this bench's own config, stopped by PID, with two
  front ends ("load-balancer modes"):
  - ``standbys``: every node behind it, health check ``GET /v1/sys/health?standbyok=true``
    (200 from the active node and from unsealed standbys), as a Kubernetes Service over all
    Vault pods;
  - ``active``: only the active node, health check ``GET /v1/sys/health`` (200 only from the
    active node), as Vault Helm's ``vault-active`` Service;
  both ``inter 500ms fastinter 250ms fall 2 rise 2``;
* a third mode without a load balancer, ``list``: ``--vault-addr`` lists the three nodes'
  addresses (comma-separated);
* the fake TokenReview API and the verifying fake Roles Anywhere of ``bench/herd.py``, each in
  its own process.

Per mode and fault (``kill``: SIGKILL of the active node; ``step-down``: ``sys/step-down`` on
it) one herd of N pods (``init --timeout 60s``) is released at once (as in herd.py: each pod a
shell blocked on a pipe) and the fault is made ``--fault-at`` seconds later. A thread polls
every node's ``sys/health`` (and the ``active`` front end's) every 100 ms. Reported: failed pods
(exit code, credentials file), time per pod (start -> exit) p50/p99/max, the election (fault ->
first node answering 200 to ``sys/health``), when the active-only load balancer answered 200
again, the tail after recovery (new active node healthy -> last pod done), retries by what was
seen, the pods' orphan-token warnings, revokes taken as done after a lost answer, revoke
warnings, and service tokens left behind (``auth/token/accessors`` before and after). After a
kill the node is restarted, unsealed, and the cluster waited for (3 healthy raft voters)
before the next herd.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import pathlib
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import requests

import herd as H  # bench/herd.py: the fakes, the pod log parser, the percentile and table helpers
from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN
from support.k8s import DEFAULT_ISSUER, SAKeys
from support.openbao import OpenBao, bao_binary, free_port, free_port_pair, terminate

ROOT = H.ROOT
RESULTS = ROOT / "bench" / "results.md"
BEGIN, END = "<!-- vault-ha begin -->", "<!-- vault-ha end -->"
MODES = ("standbys", "active", "list")
FAULTS = ("kill", "step-down")
CHECK = "inter 500ms fastinter 250ms fall 2 rise 2"


def log(msg: str) -> None:
    print(f"ha: {msg}", file=sys.stderr, flush=True)


def get_status(url: str, timeout: float = 0.5) -> int | None:
    try:
        return requests.get(url, timeout=timeout).status_code
    except requests.RequestException:
        return None


class Node:
    def __init__(self, i: int, base: pathlib.Path, ports: list[int]):
        self.i, self.name = i, f"node{i}"
        self.port = ports[i]
        self.dir = base / self.name
        (self.dir / "raft").mkdir(parents=True, exist_ok=True)
        (self.dir / "home").mkdir(exist_ok=True)
        joins = "".join(f'  retry_join {{\n    leader_api_addr = "http://127.0.0.1:{p}"\n  }}\n'
                        for j, p in enumerate(ports) if j != i)
        self.cfg = self.dir / "server.hcl"
        self.cfg.write_text(
            f'storage "raft" {{\n  path = "{self.dir / "raft"}"\n  node_id = "{self.name}"\n'
            f'{joins}}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.port + 1}"\n  tls_disable = true\n}}\n'
            f'api_addr = "http://127.0.0.1:{self.port}"\n'
            f'cluster_addr = "http://127.0.0.1:{self.port + 1}"\n')
        self.proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.dir / "home")
        with open(self.dir / "bao.log", "ab") as f:
            self.proc = subprocess.Popen([str(bao_binary()), "server", f"-config={self.cfg}",
                                          "-log-level=warn"], stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        H.track(self.proc)
        H.wait_port(self.port, self.proc, f"bao {self.name}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health(self) -> int | None:
        return get_status(f"{self.addr}/v1/sys/health")

    def api(self, method: str, path: str, body=None, token: str | None = None, **kw):
        headers = {"X-Vault-Token": token} if token else {}
        return requests.request(method, f"{self.addr}/v1/{path}", json=body, headers=headers,
                                timeout=kw.pop("timeout", 60), **kw)


class Cluster:
    def __init__(self, base: pathlib.Path):
        ports = []
        while len(ports) < 3:
            p = free_port_pair()
            if all(abs(p - q) > 1 for q in ports):
                ports.append(p)
        self.nodes = [Node(i, base, ports) for i in range(3)]
        self.root_token = ""
        self.unseal_key = ""

    def start(self) -> None:
        n0 = self.nodes[0]
        n0.start()
        r = n0.api("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        assert r.status_code == 200, r.text
        self.root_token, self.unseal_key = r.json()["root_token"], r.json()["keys_base64"][0]
        self.unseal(n0)
        self.wait(lambda: n0.health() == 200, 60, "node0 active")
        for n in self.nodes[1:]:
            n.start()
            self.unseal(n)
        self.wait_healthy()

    def unseal(self, node: Node) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = node.api("PUT", "sys/unseal", {"key": self.unseal_key})
                if r.status_code == 200 and not r.json().get("sealed", True):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} not unsealed after 60 s")
            time.sleep(0.5)

    @staticmethod
    def wait(cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def active(self) -> Node | None:
        for n in self.nodes:
            if n.alive() and n.health() == 200:
                return n
        return None

    def wait_healthy(self, timeout: float = 180) -> None:
        """Every node up and unsealed, one active, 3 raft voters that each heard from the
        leader within the last 5 s (autopilot's own "healthy" flaps on a loaded machine)."""
        last = ["nothing yet"]

        def ok() -> bool:
            statuses = {n.name: n.health() if n.alive() else "dead" for n in self.nodes}
            last[0] = f"sys/health {statuses}"
            if not all(s in (200, 429) for s in statuses.values()):
                return False
            a = self.active()
            if a is None:
                return False
            try:
                r = a.api("GET", "sys/storage/raft/autopilot/state", token=self.root_token,
                          timeout=5)
            except requests.RequestException as e:
                last[0] += f"; autopilot: {e}"
                return False
            if r.status_code != 200:
                last[0] += f"; autopilot: HTTP {r.status_code}"
                return False
            d = r.json()["data"]
            servers = d.get("servers") or {}
            last[0] += "; autopilot: " + ", ".join(
                f"{k} {v.get('status')} {v.get('last_contact')}" for k, v in servers.items())
            contact = [v.get("status") == "leader" or _seconds(v.get("last_contact")) < 5
                       for v in servers.values()]
            return len(d.get("voters") or []) == 3 and len(contact) == 3 and all(contact)
        try:
            self.wait(ok, timeout, "3 raft voters in contact")
        except RuntimeError as e:
            raise RuntimeError(f"{e}: {last[0]}") from None

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is not None:
                terminate(n.proc)


def _seconds(go_duration) -> float:
    """A Go duration string as raft reports it ("0s", "12.5ms", "1.2s", "1m2s") in seconds."""
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(ns|us|µs|ms|s|m|h)", str(go_duration or "")):
        total += float(num) * {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1,
                               "m": 60, "h": 3600}[unit]
    return total if go_duration else float("inf")


def haproxy_config(cluster: Cluster, ports: dict[str, int], run: pathlib.Path) -> str:
    servers = "".join(f"  server {n.name} 127.0.0.1:{n.port} check\n" for n in cluster.nodes)
    out = ["global", "  maxconn 8192", f"  pidfile {run / 'haproxy.pid'}", "defaults",
           "  mode http", "  timeout connect 2s", "  timeout client 90s",
           "  timeout server 90s", "  retries 2", ""]
    for mode, check in (("standbys", "/v1/sys/health?standbyok=true"),
                        ("active", "/v1/sys/health")):
        out += [f"frontend fe_{mode}", f"  bind 127.0.0.1:{ports[mode]}",
                f"  default_backend be_{mode}", f"backend be_{mode}", "  balance roundrobin",
                f"  option httpchk GET {check}", "  http-check expect status 200",
                f"  default-server {CHECK}", servers]
    return "\n".join(out)


def start_haproxy(cluster: Cluster, tmp: pathlib.Path) -> tuple[subprocess.Popen, dict[str, int]]:
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    ports = {"standbys": free_port(), "active": free_port()}
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(haproxy_config(cluster, ports, tmp))
    with open(tmp / "haproxy.log", "ab") as f:
        proc = subprocess.Popen([exe, "-db", "-f", str(cfg)], stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    H.track(proc)
    for mode, port in ports.items():
        H.wait_port(port, proc, f"haproxy {mode}")
    return proc, ports


class Poller(threading.Thread):
    """Polls every node's sys/health and the active-only front end's, every 100 ms."""

    def __init__(self, cluster: Cluster, lb_active: str):
        super().__init__(daemon=True)
        self.cluster, self.lb = cluster, lb_active
        self.seen: list[tuple[float, str, int | None]] = []
        self.stop_ev = threading.Event()

    def run(self) -> None:
        while not self.stop_ev.is_set():
            for n in self.cluster.nodes:
                self.seen.append((time.perf_counter(), n.name, get_status(
                    f"{n.addr}/v1/sys/health", 0.3)))
            self.seen.append((time.perf_counter(), "lb", get_status(
                f"{self.lb}/v1/sys/health", 0.3)))
            self.stop_ev.wait(0.1)

    def first_200(self, after: float, who) -> float | None:
        for t, name, st in self.seen:
            if t > after and st == 200 and who(name):
                return t
        return None


def retry_kind(why: str) -> str:
    if "standby could not reach" in why:
        return "3xx"
    if "from the load balancer" in why:
        m = re.search(r"\((\d{3}) from", why)
        return f"{m.group(1)} (LB)" if m else "LB"
    if "no active Vault node" in why:
        return "500 no active"
    if "connection failed" in why:
        return "conn refused"
    if "timed out" in why or "request failed" in why:
        return "conn lost"
    m = re.search(r"HTTP (\d{3})", why)
    return m.group(1) if m else "other"


class Bench:
    def __init__(self, tmp: pathlib.Path, binary: pathlib.Path, a):
        self.tmp, self.binary, self.a = tmp, binary, a
        self.sa_keys = SAKeys()
        reviewer = self.sa_keys.mint("kube-system", "openbao-token-reviewer", aud=DEFAULT_ISSUER,
                                     ttl=86400)
        (tmp / "sa.pub").write_bytes(self.sa_keys.public_pem)
        (tmp / "reviewer.jwt").write_text(reviewer)
        tr_port = free_port()
        log("starting the fake TokenReview API")
        H.start_fake("tokenreview", ["--public-key", str(tmp / "sa.pub"),
                                     "--reviewer-token-file", str(tmp / "reviewer.jwt")],
                     tr_port, tmp / "tokenreview.log")
        tokenreview = H.TokenReviewProc(f"http://127.0.0.1:{tr_port}", reviewer)
        log("starting 3 OpenBao nodes (raft) and waiting for 3 healthy voters")
        self.cluster = Cluster(tmp / "cluster")
        self.cluster.start()
        log("starting haproxy")
        self.haproxy, self.lb_ports = start_haproxy(self.cluster, tmp)
        self.lb = {m: f"http://127.0.0.1:{p}" for m, p in self.lb_ports.items()}
        self.lb["list"] = ",".join(n.addr for n in self.cluster.nodes)
        Cluster.wait(lambda: get_status(f"{self.lb['active']}/v1/sys/health") == 200, 30,
                     "haproxy's active front end")
        # configure.sh through the active-only front end (the support class's helpers, root
        # token from the init).
        self.ob = OpenBao(tmp / "configure", self.sa_keys, tokenreview,
                          port=self.lb_ports["active"])
        self.ob.root_token = self.cluster.root_token
        log("running vault/configure.sh")
        self.ob.configure(AUTH_METHODS="kubernetes", K8S_BOUND_SA_NAMES=self.ob.sa_name,
                          TOKEN_TYPE=a.token_type)
        ra_port = free_port()
        (tmp / "anchor.pem").write_bytes(self.ob.root_ca_pem)
        log("starting the fake Roles Anywhere")
        H.start_fake("rolesanywhere", ["--trust-anchor", str(tmp / "anchor.pem"),
                                       "--region", REGION], ra_port, tmp / "rolesanywhere.log")
        self.ra_url = f"http://127.0.0.1:{ra_port}"

    def accessors(self) -> int:
        r = self.ob.api("LIST", "auth/token/accessors", token=self.cluster.root_token,
                        timeout=60)
        assert r.status_code == 200, r.text
        return len(r.json()["data"]["keys"])

    def ra_accepted(self) -> int:
        return requests.get(f"{self.ra_url}/_fake/stats", timeout=60).json()["accepted"]

    def round(self, mode: str, fault: str, n: int, k: int) -> dict:
        a, ob, cluster = self.a, self.ob, self.cluster
        cluster.wait_healthy()
        Cluster.wait(lambda: get_status(f"{self.lb['active']}/v1/sys/health") == 200, 30,
                     "haproxy's active front end")
        time.sleep(1.0)  # let haproxy's standby checks rise too
        old = cluster.active()
        assert old is not None
        d = self.tmp / f"{mode}-{fault}-{k}"
        d.mkdir()
        pods = []
        for i in range(n):
            p = d / f"pod{i}"
            p.mkdir()
            (p / "token").write_text(ob.mint_sa_token(ttl=3600))
            pods.append({"i": i, "dir": p, "creds": p / "credentials", "stderr": p / "stderr",
                         "token": p / "token"})
        common = [str(self.binary), "init", "--trust-anchor-arn", TA_ARN, "--profile-arn",
                  PROFILE_ARN, "--role-arn", ROLE_ARN, "--endpoint", self.ra_url,
                  "--vault-addr", self.lb[mode], "--vault-role", ob.k8s_role, "--pki-mount",
                  ob.pki_mount, "--pki-role", ob.pki_role, "--common-name", ob.fixed_cn,
                  "--log-format", "json", "--termination-log", "/dev/null",
                  "--timeout", a.timeout]
        child_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("VAULT_", "BAO_", "IAMRA_", "AWS_"))}
        acc0, ra0 = self.accessors(), self.ra_accepted()
        poller = Poller(cluster, self.lb["active"])
        poller.start()
        by_pid: dict[int, dict] = {}
        lock = threading.Lock()
        done = threading.Event()
        remaining = [n]

        def reaper():
            while remaining[0]:
                try:
                    pid, status, _ = os.wait4(-1, 0)
                except ChildProcessError:
                    time.sleep(0.01)
                    continue
                t = time.perf_counter()
                with lock:
                    pod = by_pid.get(pid)
                if pod is None:
                    continue
                pod.update(end=t, rc=os.waitstatus_to_exitcode(status))
                remaining[0] -= 1
            done.set()

        threading.Thread(target=reaper, daemon=True).start()
        devnull = os.open(os.devnull, os.O_RDWR)
        gate_r, gate_w = os.pipe()
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
        os.close(devnull)
        os.close(gate_r)
        time.sleep(0.5)
        log(f"[{mode} {fault}] N={n}: go; {fault} of {old.name} in {a.fault_at} s")
        t0 = time.perf_counter()
        os.close(gate_w)
        time.sleep(a.fault_at)
        in_flight = remaining[0]
        t_fault = time.perf_counter()
        if fault == "kill":
            old.kill()
        else:
            r = old.api("PUT", "sys/step-down", token=cluster.root_token)
            assert r.status_code == 204, r.text
        t_fault_done = time.perf_counter()
        if not done.wait(timeout=a.herd_timeout):
            log(f"[{mode} {fault}] pods still running after {a.herd_timeout} s: killing them")
            for pid, pod in by_pid.items():
                if "end" not in pod:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            done.wait(timeout=30)
        # Keep polling until a new active node is seen (the herd may finish before it).
        deadline = time.monotonic() + 60
        while (poller.first_200(t_fault_done + 0.3, lambda nm: nm.startswith("node")) is None
               and time.monotonic() < deadline):
            time.sleep(0.2)
        lb_deadline = time.monotonic() + 30
        while poller.first_200(t_fault_done, lambda nm: nm == "lb") is None \
                and time.monotonic() < lb_deadline:
            time.sleep(0.2)
        poller.stop_ev.set()
        poller.join()
        # After a step-down the old node may answer 200 for a moment: the new active node is
        # the first 200 after the old one was seen stepping down.
        t_down = next((t for t, nm, st in poller.seen
                       if t > t_fault and nm == old.name and st != 200), t_fault_done)
        t_active = poller.first_200(t_down, lambda nm: nm.startswith("node"))
        t_lb = poller.first_200(t_fault_done, lambda nm: nm == "lb")
        new = next((nm for t, nm, st in poller.seen if t == t_active), "?")
        if fault == "kill":
            log(f"[{mode} {fault}] restarting {old.name}")
            old.start()
            cluster.unseal(old)
        Cluster.wait(lambda: get_status(f"{self.lb['active']}/v1/sys/health") == 200, 120,
                     "haproxy's active front end")
        time.sleep(2.0)  # revocations settle
        acc1, ra1 = self.accessors(), self.ra_accepted()

        failures, retries = [], {}
        orphan_warn = revoke_earlier = revoke_warn = 0
        for pod in pods:
            parsed = H.parse_pod_log(pod["stderr"].read_text(errors="replace"))
            for w in parsed["warns"]:
                msg = w.get("message", "")
                if "will retry" in msg:
                    kind = retry_kind(w.get("error", ""))
                    retries[kind] = retries.get(kind, 0) + 1
                elif "possible orphan token" in msg:
                    orphan_warn += 1
                elif "could not revoke" in msg:
                    revoke_warn += 1
            text = pod["stderr"].read_text(errors="replace")
            revoke_earlier += text.count("an earlier attempt did it")
            why = None
            if pod.get("rc") != 0:
                err = (parsed["errors"] or ["?"])[-1]
                why = f"exit {pod.get('rc')}: {err.get('error', err) if isinstance(err, dict) else err}"
            elif not H.read_ini_key(pod["creds"], "aws_access_key_id"):
                why = "no credentials in the file"
            if why:
                failures.append(f"pod {pod['i']}: {str(why)[:300]}")
        if ra1 - ra0 != n - len(failures):
            failures.append(f"Roles Anywhere accepted {ra1 - ra0} sessions for "
                            f"{n - len(failures)} successful pods")
        ends = [p["end"] for p in pods if "end" in p]
        walls = [(p["end"] - t0) * 1e3 for p in pods if "end" in p]
        t_last = max(ends) if ends else float("nan")
        rel = lambda t: (t - t_fault) if t is not None else None  # noqa: E731
        res = {
            "mode": mode, "fault": fault, "k": k, "n": n, "failures": failures,
            "in_flight": in_flight, "fault_at": t_fault - t0,
            "old": old.name, "new": new,
            "election_s": rel(t_active), "lb_s": rel(t_lb), "last_s": rel(t_last),
            "tail_s": (t_last - t_active) if t_active is not None else None,
            "tail_lb_s": (t_last - t_lb) if t_lb is not None else None,
            "p50_ms": H.pct(walls, 50), "p99_ms": H.pct(walls, 99), "max_ms": max(walls),
            "retries": retries, "orphan_warn": orphan_warn, "revoke_earlier": revoke_earlier,
            "revoke_warn": revoke_warn, "tokens_left": acc1 - acc0,
        }
        log(f"[{mode} {fault}] {len(failures)} failed; election {fmt(res['election_s'])}, "
            f"tail {fmt(res['tail_s'])}; retries {retries}")
        return res


def fmt(v, unit: str = " s", digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}{unit}"


def report(results: list[dict], meta: dict) -> str:
    out = [BEGIN, "## Vault HA: a herd while the active node dies or steps down "
           "(`bench/ha.sh`)", "",
           "Generated by `bench/ha.py` (set-up and columns: bench/README.md, \"Vault HA\"). "
           f"Run {meta['when']}: `{meta['cmd']}`, binary {meta['binary']} (git {meta['git']}), "
           f"{meta['openbao']}, {meta['haproxy']}; {os.cpu_count()} CPUs, Linux "
           f"{platform.release()}; load average {meta['load0']} at the start, {meta['load1']} at "
           f"the end. haproxy checks: `{CHECK}`. Times after the fault are from the fault "
           "(SIGKILL sent, or `sys/step-down` sent); \"new active\" is the first node answering "
           "200 to `sys/health` (polled every 100 ms); the tail is new active -> last pod done.",
           ""]
    rows = []
    for r in results:
        rows.append([r["mode"], r["fault"], str(r["k"]), str(r["n"]), str(len(r["failures"])),
                     f"{r['in_flight']} at {r['fault_at']:.1f} s", f"{r['old']} → {r['new']}",
                     fmt(r["election_s"]), fmt(r["lb_s"]) if r["mode"] == "active" else "—",
                     fmt(r["last_s"]), fmt(r["tail_s"]),
                     f"{r['p50_ms'] / 1e3:.1f} / {r['p99_ms'] / 1e3:.1f} / {r['max_ms'] / 1e3:.1f} s",
                     ", ".join(f"{k}: {v}" for k, v in sorted(r["retries"].items())) or "—",
                     str(r["orphan_warn"]), str(r["revoke_earlier"]), str(r["revoke_warn"]),
                     str(r["tokens_left"])])
    out.append(H.table(["load balancer", "fault", "round", "pods", "failed", "pods running at the fault",
                        "active node", "new active healthy", "LB healthy again",
                        "last pod done", "tail after recovery",
                        "per pod p50 / p99 / max (start → exit)", "retries by what was seen",
                        "possible orphan token warnings", "revokes done by a lost attempt",
                        "revoke warnings", "service tokens left"], rows))
    notes = [f"- {r['mode']} {r['fault']} (round {r['k']}): {f}" for r in results
             for f in r["failures"][:10]]
    if any(r["new"] == r["old"] for r in results):
        notes.insert(0, "A step-down whose \"active node\" column names the same node twice: "
                        "that node was active again at the first poll after the step-down "
                        "(OpenBao re-elected it, or the poll missed the gap); the pods then saw "
                        "little or nothing of it.")
        if len(notes) > 1:
            notes.insert(1, "")
    if notes:
        out += ["", "Notes and failures:", ""] + notes
    out += ["", END]
    return "\n".join(out) + "\n"


def update_results(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        text = pre + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="a herd against a 3-node OpenBao cluster behind "
                                            "haproxy while the active node fails")
    p.add_argument("n", type=int, help="pods per herd")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated: {', '.join(MODES)}")
    p.add_argument("--faults", default=",".join(FAULTS),
                   help=f"comma-separated: {', '.join(FAULTS)}")
    p.add_argument("--fault-at", type=float, default=0.5,
                   help="seconds after the herd's release")
    p.add_argument("--timeout", default="60s", help="--timeout of init")
    p.add_argument("--repeat", type=int, default=1, help="rounds of every mode and fault")
    p.add_argument("--token-type", default="service", choices=("service", "batch"))
    p.add_argument("--herd-timeout", type=float, default=120)
    p.add_argument("--no-results", action="store_true", help="do not update bench/results.md")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args(argv)
    if not 1 <= a.n <= 2000:
        p.error("N must be 1..2000")
    modes, faults = a.modes.split(","), a.faults.split(",")
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}")
    for f in faults:
        if f not in FAULTS:
            p.error(f"unknown fault {f!r}")
    binary = pathlib.Path(os.environ.get("IAMRA_BIN") or H.DEFAULT_BIN)
    if not binary.exists():
        p.error(f"no binary at {binary} (build it or set IAMRA_BIN)")
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src", "Cargo.toml"],
                      capture_output=True, text=True).stdout.strip():
        git += " + uncommitted changes in src/"
    meta = {"when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cmd": os.environ.get("IAMRA_HA_CMD") or "bench/ha.py " + shlex.join(argv),
            "git": git, "load0": H.loadavg(),
            "binary": f"`{binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}`"
            + (f" ({os.environ['IAMRA_HA_BUILD']})" if os.environ.get("IAMRA_HA_BUILD") else ""),
            "openbao": subprocess.run([str(bao_binary()), "version"], capture_output=True,
                                      text=True).stdout.strip().split(" (")[0],
            "haproxy": "HAProxy " + subprocess.run(
                [shutil.which("haproxy") or "/usr/sbin/haproxy", "-v"], capture_output=True,
                text=True).stdout.split()[2]}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="iamra-ha-"))

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results = []
    bench = None
    try:
        bench = Bench(tmp, binary, a)
        for k in range(a.repeat):
            for m in modes:
                for f in faults:
                    results.append(bench.round(m, f, a.n, k + 1))
    finally:
        if bench is not None:
            bench.cluster.stop()
        for c in reversed(H._children):
            terminate(c)
        if a.keep_tmp:
            log(f"work folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["load1"] = H.loadavg()
    section = report(results, meta)
    sys.stdout.write(section)
    if not a.no_results:
        update_results(section)
        log("bench/results.md updated")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
