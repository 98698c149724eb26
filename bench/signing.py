#!/usr/bin/env python3
"""Signing cost per key type (not part of CI): see bench/README.md, "Signing cost per key type".

Runs ``iamra-bootstrap credential-process --no-cache --certificate C --private-key K`` against
the verifying fake Roles Anywhere (in this process, 127.0.0.1 only) N times per key type, in a
seeded shuffled order, and reports per key type the wall time (spawn to reap) and the child's
own CPU time (``ru_utime + ru_stime`` from ``os.wait4``: key loading, signing, TLS-free HTTP,
start-up; the fake's verification runs in this driver, not in the child). The CPU difference to
EC P-256 (the default key type, whose cost the init benchmark's 5 ms own-overhead target
already covers) is what a key type costs on top. Every run must exit 0 with an accepted request.

    .venv/bin/python bench/signing.py [--runs 30] [--bin PATH] [--out FILE]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.rolesanywhere import FakeRolesAnywhere  # noqa: E402
from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN  # noqa: E402
from support.pki import Pki  # noqa: E402

DEFAULT_BIN = ROOT / "target/x86_64-unknown-linux-musl/release/iamra-bootstrap"
KINDS = ("p256", "p384", "rsa2048", "rsa3072", "rsa4096", "mldsa44", "mldsa65", "mldsa87")
# Own-overhead target of one init run (bench/README.md, section 1); a key type's extra CPU per
# signature must stay well inside it.
TARGET_OVERHEAD_MS = 5.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _shown(path: pathlib.Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run_once(binary: pathlib.Path, args: list[str], env: dict) -> tuple[float, float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, proc.returncode, err


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("IAMRA_BIN", DEFAULT_BIN)))
    ap.add_argument("--out", type=pathlib.Path, default=None)
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="comma-separated key types (p256 first is the reference)")
    a = ap.parse_args(argv)
    kinds = tuple(a.kinds.split(","))
    if "p256" not in kinds or not set(kinds) <= set(KINDS):
        ap.error(f"--kinds: p256 plus any of {', '.join(KINDS)}")
    if not 1 <= a.runs <= 10000:
        ap.error("--runs must be in 1..10000")
    with tempfile.TemporaryDirectory(prefix="iamra-bench-sign-") as tmp:
        tmp = pathlib.Path(tmp)
        pki = Pki(tmp / "pki")
        files = {k: pki.leaf(k) for k in kinds}
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}
        res: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in kinds}
        failures = []
        with FakeRolesAnywhere(pki.trust_anchors, region=REGION) as fake:
            base = ["credential-process", "--no-cache", "--trust-anchor-arn", TA_ARN,
                    "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN,
                    "--endpoint", fake.url]
            order = [k for k in kinds for _ in range(a.runs + 2)]
            random.Random(a.seed).shuffle(order)
            seen = dict.fromkeys(kinds, 0)
            for kind in order:
                f = files[kind]
                before = fake.count
                wall, cpu, rc, err = run_once(
                    a.bin, [*base, "--certificate", f.cert_pem, "--private-key", f.key_pkcs8],
                    env)
                ok = rc == 0 and fake.count == before + 1 \
                    and fake.requests[-1].verdict == "accepted"
                if not ok:
                    failures.append(f"{kind}: exit {rc} {err.strip()[:200]}")
                    continue
                seen[kind] += 1
                if seen[kind] > 2:  # two warm-up runs per kind
                    res[kind]["wall"].append(wall)
                    res[kind]["cpu"].append(cpu)
    ref = statistics.median(res["p256"]["cpu"]) if res["p256"]["cpu"] else float("nan")
    lines = [
        "## Signing cost per key type (`credential-process --no-cache`, files)",
        "",
        f"{a.runs} runs per key type after 2 warm-up runs, shuffled (seed {a.seed}); binary "
        f"`{_shown(a.bin)}` ({a.bin.stat().st_size:,} bytes); load average "
        f"{os.getloadavg()[0]:.2f} at the end. CPU = the child's `ru_utime + ru_stime`; Δ = CPU p50 − "
        "EC P-256's CPU p50 (what the key type adds: loading the key and one signature).",
        "",
        "| key | wall p50 | wall p95 | CPU p50 | CPU p95 | Δ CPU vs P-256 | within "
        f"{TARGET_OVERHEAD_MS:g} ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        w, c = res[kind]["wall"], res[kind]["cpu"]
        if not c:
            lines.append(f"| {kind} | – | – | – | – | – | MISS (no successful run) |")
            continue
        delta = statistics.median(c) - ref
        lines.append(f"| {kind} | {pct(w, .5):.2f} ms | {pct(w, .95):.2f} ms | "
                     f"{pct(c, .5):.2f} ms | {pct(c, .95):.2f} ms | {delta:+.2f} ms | "
                     f"{'PASS' if delta <= TARGET_OVERHEAD_MS else 'MISS'} |")
    if failures:
        lines += ["", "Failed runs:", *[f"- {x}" for x in failures[:20]]]
    report = "\n".join(lines) + "\n"
    print(report)
    if a.out:
        a.out.write_text(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
