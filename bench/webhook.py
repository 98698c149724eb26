"""iamra-bootstrap's benchmark of the admission webhook (not part of CI; see bench/README.md).

Starts ``iamra-bootstrap webhook`` on 127.0.0.1 with a throwaway serving certificate and loads
``POST /mutate?timeout=10s`` with wrk over TLS (keep-alive connections, as the API server keeps
them), the body a real-shaped AdmissionReview of a Deployment's pod (generateName, an init
container, volumes, env) that gets injected. Passes:

1. 50 connections, each waiting ``--pace-ms`` (50) between requests: about 1,000 admissions a
   second in all, far more pod creations than a busy cluster's API server sends, yet not
   saturating: the admission latency the API server sees; target p99 <= 2 ms. (Saturated, 50
   requests in flight on one event loop queue behind each other: p99 >= 50 x the cost of one.)
2. 50 connections back to back: throughput, and latency under saturation (queueing);
3. 1 connection back to back: the cost of one review.

Memory: VmRSS and VmHWM from /proc/PID/status after the load (the webhook's own peak; exec
starts a new address space, so the Python parent does not count). Target <= 15 MB.

    .venv/bin/python bench/webhook.py [--seconds S] [--pace-ms MS] [--out FILE]

Writes a Markdown section on stdout and into ``--out`` (default bench/results.md) between the
markers ``<!-- webhook:begin -->`` and ``<!-- webhook:end -->`` (bench/run.py keeps it).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402

from support.fake_ra import PROFILE_ARN, ROLE_ARN, TA_ARN  # noqa: E402
from support.openbao import free_port  # noqa: E402
from test_webhook import deployment_pod, make_serving_pair, review  # noqa: E402

BEGIN, END = "<!-- webhook:begin -->", "<!-- webhook:end -->"
P99_TARGET_MS = 2.0
RSS_TARGET_KIB = 15 * 1000 * 1000 // 1024   # 15 MB

WRK_LUA = r'''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("IAMRA_BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
local pace = tonumber(os.getenv("IAMRA_BENCH_DELAY_MS") or "0")
if pace > 0 then
  delay = function() return pace end
end
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"patch"', 1, true) then
    wrong = (wrong or 0) + 1
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f,"max":%.1f,' ..
    '"mean":%.2f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
'''


def log(msg: str) -> None:
    print(f"bench-webhook: {msg}", file=sys.stderr, flush=True)


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "Threads"):
            out[k] = int(v.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process so far (/proc/PID/stat, clock ticks)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, lua: pathlib.Path, body: pathlib.Path, url: str, threads: int, conns: int,
            seconds: int, delay_ms: int = 0) -> dict:
    argv = [wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "2s",
            "-s", str(lua), url]
    env = dict(os.environ, IAMRA_BENCH_BODY=str(body), IAMRA_BENCH_DELAY_MS=str(delay_ms))
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    m = re.search(r"^BENCH_JSON (\{.*\})$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (exit {p.returncode}): {p.stdout[-800:]} {p.stderr[-800:]}")
    r = json.loads(m.group(1))
    return {"threads": threads, "conns": conns, "seconds": seconds, "delay_ms": delay_ms,
            "requests": r["requests"], "rps": r["requests"] / (r["duration_us"] / 1e6),
            "p50_ms": r["p50"] / 1e3, "p90_ms": r["p90"] / 1e3, "p99_ms": r["p99"] / 1e3,
            "p999_ms": r["p999"] / 1e3, "max_ms": r["max"] / 1e3,
            "errors": {k: r[k] for k in ("connect", "read", "write", "status", "timeout") if r[k]}}


def cpu_model() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def bench(binary: pathlib.Path, seconds: int, pace_ms: int, wrk: str) -> dict:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="iamra-bench-webhook-"))
    ca = make_serving_pair(tmp / "tls", "bench CA")
    port = free_port()
    argv = [str(binary), "webhook", "--listen", f"127.0.0.1:{port}",
            "--tls-cert", str(tmp / "tls" / "tls.crt"), "--tls-key", str(tmp / "tls" / "tls.key"),
            "--image", "iamra-bootstrap:bench", "--trust-anchor-arn", TA_ARN,
            "--profile-arn", PROFILE_ARN, "--vault-addr", "https://vault.example:8200",
            "--pki-role", "bootstrapper", "--log-level", "warn"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=(tmp / "webhook.log").open("wb"))
    res: dict = {"binary": str(binary), "size": binary.stat().st_size}
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(base + "/healthz", verify=str(ca), timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "webhook.log").read_text())
                time.sleep(0.02)
        res["idle"] = proc_status(proc.pid)
        body = tmp / "review.json"
        body.write_text(json.dumps(review(deployment_pod())))
        res["body_bytes"] = body.stat().st_size
        r = requests.post(base + "/mutate?timeout=10s", data=body.read_bytes(), verify=str(ca),
                          timeout=5).json()["response"]
        if not (r["allowed"] and r.get("patch")):
            raise RuntimeError(f"the bench review is not injected: {r}")
        lua = tmp / "mutate.lua"
        lua.write_text(WRK_LUA)
        url = base + "/mutate?timeout=10s"
        log("wrk warm-up (2 s)")
        run_wrk(wrk, lua, body, url, 2, 50, 2)
        passes = []
        for label, threads, conns, delay in (
                (f"50 connections, {pace_ms} ms between requests each", 2, 50, pace_ms),
                ("50 connections back to back", 2, 50, 0),
                ("1 connection back to back", 1, 1, 0)):
            log(f"{label}, {seconds} s")
            cpu0 = cpu_seconds(proc.pid)
            p = run_wrk(wrk, lua, body, url, threads, conns, seconds, delay_ms=delay)
            p["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / max(p["requests"], 1) * 1e6
            passes.append(p)
        res["passes"] = passes
        res["after"] = proc_status(proc.pid)
        m = requests.get(base + "/metrics", verify=str(ca), timeout=5).text
        res["patched"] = int(re.search(r'result="patched"\} (\d+)', m).group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            res["exit"] = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            res["exit"] = "killed"
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def report(res: dict, pace_ms: int) -> str:
    paced, sat, one = res["passes"]
    hwm = res["after"]["VmHWM"]
    ok = lambda b: "pass" if b else "**FAIL**"  # noqa: E731
    lines = [
        BEGIN,
        "## Admission webhook",
        "",
        f"`bench/webhook.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{cpu_model()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}): `iamra-bootstrap webhook` ({res['size']:,} bytes, static musl) "
        f"on 127.0.0.1, TLS 1.3, `POST /mutate?timeout=10s` with a {res['body_bytes']:,}-byte "
        "AdmissionReview of a Deployment's pod that gets injected, by wrk (2 threads, keep-alive).",
        "",
        "| pass | requests/s | webhook CPU per admission | p50 | p90 | p99 | p99.9 | target | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p, target in (
        (f"50 connections, {pace_ms} ms pause each", paced, P99_TARGET_MS),
        ("50 connections, back to back (saturated)", sat, None),
        ("1 connection, back to back", one, None),
    ):
        verdict = ok(p["p99_ms"] <= target) if target else "(queueing)" if p["conns"] > 1 else ""
        lines.append(
            f"| {name} | {p['rps']:,.0f} | {p['cpu_us']:.0f} µs | {p['p50_ms']:.3f} ms | {p['p90_ms']:.3f} ms | "
            f"{p['p99_ms']:.3f} ms | {p['p999_ms']:.3f} ms | "
            f"{'p99 ≤ %g ms' % target if target else ''} | {verdict} |")
        if p["errors"]:
            lines.append(f"| errors | {p['errors']} | | | | | | | |")
    lines += [
        "",
        "| memory | measured | target | |",
        "|---|---|---|---|",
        f"| VmRSS idle / after load | {res['idle']['VmRSS'] / 1024:.2f} / "
        f"{res['after']['VmRSS'] / 1024:.2f} MiB | | |",
        f"| VmHWM (peak) after {res['patched']:,} admissions | {hwm / 1024:.2f} MiB "
        f"({hwm * 1024 / 1e6:.1f} MB) | ≤ 15 MB | {ok(hwm <= RSS_TARGET_KIB)} |",
        "",
        f"Exit after SIGTERM: {res['exit']}. Run: `bash bench/run.sh` (all sections) or "
        "`.venv/bin/python bench/webhook.py`.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(out: pathlib.Path, section: str) -> None:
    text = out.read_text() if out.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    out.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--pace-ms", type=int, default=50,
                    help="pause of each of the 50 connections between requests (paced pass)")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results.md")
    a = ap.parse_args(argv)
    wrk = shutil.which("wrk")
    if not wrk:
        print("bench-webhook: wrk is needed (apt-get install wrk; bench/run.sh installs it)",
              file=sys.stderr)
        return 2
    binary = pathlib.Path(os.environ.get(
        "IAMRA_BIN", ROOT / "target/x86_64-unknown-linux-musl/release/iamra-bootstrap"))
    res = bench(binary, a.seconds, a.pace_ms, wrk)
    section = report(res, a.pace_ms)
    print(section)
    write_section(a.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
