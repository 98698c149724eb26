#!/usr/bin/env python3
"""Signing cost of hardware keys per CreateSession (not part of CI): see bench/README.md,
"Hardware keys".

Runs ``credential-process --no-cache`` of the hardware host build against the verifying fake
Roles Anywhere (in this process, 127.0.0.1 only) N times per key, shuffled, for an EC P-256 key
file (the reference), SoftHSM2 keys (EC P-256, RSA-2048: the token set up as in
``tests/support/hardware.py``) and swtpm keys (TSS2 EC P-256 under the owner hierarchy, RSA-2048
with a password under the owner hierarchy, EC P-384 under a persistent parent). It reports wall
time (spawn to reap) and the child's own CPU (``ru_utime + ru_stime``; SoftHSM2 signs inside the
child, swtpm in its own process, so for TPM keys only the wall time shows the TPM's work). One
run of a hardware key makes two signatures (the check at load and CreateSession's) and, for a
TPM key under a hierarchy, creates the storage primary twice. Every run must exit 0 with an
accepted request.

    .venv/bin/python bench/hardware.py [--runs 30] [--bin PATH] [--out FILE]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import random
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from fakes.rolesanywhere import FakeRolesAnywhere  # noqa: E402
from signing import _shown, pct, run_once  # noqa: E402
from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN  # noqa: E402
from support.hardware import (PIN, TPM_PASSWORD, make_softhsm, start_swtpm,  # noqa: E402
                              stop_swtpm)
from support.pki import Pki  # noqa: E402

DEFAULT_BIN = ROOT / "target/quick/iamra-bootstrap"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("IAMRA_HOST_BIN", DEFAULT_BIN)))
    ap.add_argument("--out", type=pathlib.Path, default=None)
    a = ap.parse_args(argv)
    if not 1 <= a.runs <= 10000:
        ap.error("--runs must be in 1..10000")
    with tempfile.TemporaryDirectory(prefix="iamra-bench-hw-") as tmp:
        tmp = pathlib.Path(tmp)
        pki = Pki(tmp / "pki")
        (tmp / "hsm").mkdir()
        (tmp / "tpm").mkdir()
        hsm = make_softhsm(tmp / "hsm", pki)
        tpm = start_swtpm(tmp / "tpm", pki)
        try:
            file_key = pki.leaf("p256")
            cases = {
                "file EC P-256": ["--certificate", file_key.cert_pem, "--private-key",
                                  file_key.key_pkcs8],
                "SoftHSM2 EC P-256": ["--pkcs11-lib", hsm.module, "--certificate",
                                      hsm.keys["ec"].uri],
                "SoftHSM2 RSA-2048": ["--pkcs11-lib", hsm.module, "--certificate",
                                      hsm.keys["rsa"].uri],
                "swtpm EC P-256": ["--certificate", tpm.keys["ec"].cert_pem, "--private-key",
                                   tpm.keys["ec"].path],
                "swtpm RSA-2048 (password)": ["--certificate", tpm.keys["rsa_pw"].cert_pem,
                                              "--private-key", tpm.keys["rsa_pw"].path,
                                              "--tpm-key-password", TPM_PASSWORD],
                "swtpm EC P-384 (persistent parent)": ["--certificate",
                                                       tpm.keys["p384"].cert_pem,
                                                       "--private-key", tpm.keys["p384"].path],
            }
            env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "SOFTHSM2_CONF": str(hsm.conf),
                   "IAMRA_PKCS11_PIN": PIN, "TPM_DEVICE": str(tpm.socket)}
            res = {k: {"wall": [], "cpu": []} for k in cases}
            failures = []
            with FakeRolesAnywhere(pki.trust_anchors, region=REGION) as fake:
                base = ["credential-process", "--no-cache", "--trust-anchor-arn", TA_ARN,
                        "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN,
                        "--endpoint", fake.url]
                order = [k for k in cases for _ in range(a.runs + 2)]
                random.Random(a.seed).shuffle(order)
                seen = dict.fromkeys(cases, 0)
                for name in order:
                    before = fake.count
                    wall, cpu, rc, err = run_once(a.bin, [*base, *map(str, cases[name])], env)
                    ok = rc == 0 and fake.count == before + 1 \
                        and fake.requests[-1].verdict == "accepted"
                    if not ok:
                        failures.append(f"{name}: exit {rc} {err.strip()[:200]}")
                        continue
                    seen[name] += 1
                    if seen[name] > 2:
                        res[name]["wall"].append(wall)
                        res[name]["cpu"].append(cpu)
        finally:
            stop_swtpm(tpm)
    ref = "file EC P-256"
    ref_wall = statistics.median(res[ref]["wall"]) if res[ref]["wall"] else float("nan")
    lines = [
        "## Hardware keys: cost per CreateSession (`credential-process --no-cache`)",
        "",
        f"{a.runs} runs per key after 2 warm-up runs, shuffled (seed {a.seed}); binary "
        f"`{_shown(a.bin)}` (the hardware host build); load average {os.getloadavg()[0]:.2f} at the "
        "end. CPU = the child's `ru_utime + ru_stime` (swtpm's own work is not in it); Δ wall = "
        "wall p50 − the key file's wall p50. A hardware key signs twice per run (the check at "
        "load and CreateSession).",
        "",
        "| key | wall p50 | wall p95 | CPU p50 | CPU p95 | Δ wall vs file |",
        "|---|---|---|---|---|---|",
    ]
    for name in cases:
        w, c = res[name]["wall"], res[name]["cpu"]
        if not w:
            lines.append(f"| {name} | – | – | – | – | MISS (no successful run) |")
            continue
        lines.append(f"| {name} | {pct(w, .5):.2f} ms | {pct(w, .95):.2f} ms | "
                     f"{pct(c, .5):.2f} ms | {pct(c, .95):.2f} ms | "
                     f"{statistics.median(w) - ref_wall:+.2f} ms |")
    if failures:
        lines += ["", "Failed runs:", *[f"- {x}" for x in failures[:20]]]
    report = "\n".join(lines) + "\n"
    print(report)
    if a.out:
        a.out.write_text(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
