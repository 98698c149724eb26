"""``serve`` from certificate files that rotate under it, as cert-manager, csi-driver-spiffe and
SPIRE rotate them.

Contract (``src/source/files.rs``, issue 11): the files are re-read at every refresh; when the
certificate in use expires before the credentials it minted, a rotation is picked up at once
(within a few seconds); a key and certificate caught mid-rotation (mismatched) are read again,
never fatal. Throughout, every request gets valid, unexpired credentials.

A certificate that outlives its credentials is not watched: a rotation is used at the next
scheduled refresh, not before.

The files live in the layout of the Kubernetes atomic writer (``tls.crt -> ..data/tls.crt``,
``..data -> ..<timestamp>``): the first rotation swaps the ``..data`` symlink, the second
rewrites the files in place, key first and the certificate 1.5 s later.
"""
from __future__ import annotations

import datetime as dt
import os
import pathlib
import subprocess
import threading
import time

import pytest
import requests

from conftest import clean_env
from support.fake_ra import PROFILE_ARN, ROLE_ARN, TA_ARN
from support.openbao import free_port, terminate
from support.pki import key_pem, make_leaf

LIFETIME = 60  # seconds of validity of every certificate


def new_leaf(pki):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return make_leaf(pki.root, key="p256", not_before=now - dt.timedelta(seconds=5),
                     not_after=now + dt.timedelta(seconds=LIFETIME))


def write_version(base: pathlib.Path, name: str, leaf) -> pathlib.Path:
    d = base / name
    d.mkdir()
    (d / "tls.crt").write_bytes(leaf.cert_pem)
    (d / "tls.key").write_bytes(key_pem(leaf.key))
    return d


def swap_data_link(base: pathlib.Path, target: pathlib.Path) -> None:
    tmp = base / "..data_tmp"
    os.symlink(target.name, tmp)
    os.rename(tmp, base / "..data")


class Poller(threading.Thread):
    """Fetches credentials over IMDSv2 every 0.25 s and records every answer."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.stop_flag = base, threading.Event()
        self.answers: list[tuple[float, int, dict | None]] = []

    def run(self):
        s = requests.Session()
        while not self.stop_flag.is_set():
            t = time.time()
            try:
                tok = s.put(f"{self.base}/latest/api/token", timeout=2,
                            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).text
                h = {"X-aws-ec2-metadata-token": tok}
                role = s.get(f"{self.base}/latest/meta-data/iam/security-credentials/",
                             headers=h, timeout=2).text
                r = s.get(f"{self.base}/latest/meta-data/iam/security-credentials/{role}",
                          headers=h, timeout=2)
                self.answers.append((t, r.status_code, r.json() if r.status_code == 200 else None))
            except requests.RequestException as e:
                self.answers.append((t, 0, {"error": str(e)}))
            time.sleep(0.25)

    def latest_key(self) -> str | None:
        for _, status, body in reversed(self.answers):
            if status == 200:
                return body["AccessKeyId"]
        return None


def wait_for(cond, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_serve_survives_two_rotations(iamra_bin, pki, fake_ra, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    a = new_leaf(pki)
    first = write_version(certs, "..2026_a", a)
    os.symlink(first.name, certs / "..data")
    for f in ("tls.crt", "tls.key"):
        os.symlink(f"..data/{f}", certs / f)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [str(iamra_bin), "serve", "--certificate", str(certs / "tls.crt"),
            "--private-key", str(certs / "tls.key"), "--trust-anchor-arn", TA_ARN,
            "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN, "--port", str(port),
            "--log-level", "debug"]
    env = clean_env({"AWS_ENDPOINT_URL_ROLESANYWHERE": fake_ra.url}, home=tmp_path)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    poller = Poller(base)
    try:
        wait_for(lambda: fake_ra.count >= 1 and
                 requests.get(f"{base}/readyz", timeout=1).status_code == 200
                 if proc.poll() is None else True, 20, "the first credentials")
        assert proc.poll() is None, proc.stderr.read()
        poller.start()
        serials = lambda: [r.serial for r in fake_ra.requests if r.verdict == "accepted"]  # noqa: E731
        assert serials()[-1] == str(a.serial)

        # Rotation 1 (symlink swap) at ~10 s: picked up at once, not at the next refresh
        # (the credentials last an hour; the certificate 60 s).
        time.sleep(10)
        b = new_leaf(pki)
        swap_data_link(certs, write_version(certs, "..2026_b", b))
        took = wait_for(lambda: serials()[-1] == str(b.serial), 10, "the symlink-swapped certificate")
        wait_for(lambda: poller.latest_key() == fake_ra.issued[-1]["accessKeyId"], 5,
                 "the new credentials to be served")
        print(f"rotation 1 picked up after {took:.1f}s")

        # Rotation 2 (in place) at ~20 s: key first, the certificate 1.5 s later.
        time.sleep(10)
        c = new_leaf(pki)
        current = certs / "..2026_b"
        (current / "tls.key").write_bytes(key_pem(c.key))
        time.sleep(1.5)
        (current / "tls.crt").write_bytes(c.cert_pem)
        took = wait_for(lambda: serials()[-1] == str(c.serial), 15, "the rewritten certificate")
        wait_for(lambda: poller.latest_key() == fake_ra.issued[-1]["accessKeyId"], 5,
                 "the new credentials to be served")
        print(f"rotation 2 picked up after {took:.1f}s")
        time.sleep(3)
        assert proc.poll() is None, "serve exited during the rotation"
    finally:
        poller.stop_flag.set()
        poller.join(5)
        terminate(proc)
    log = proc.stderr.read()

    # Every answer during the run: 200 with credentials that had not expired.
    assert len(poller.answers) > 50
    for t, status, body in poller.answers:
        assert status == 200, (status, body)
        exp = dt.datetime.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc).timestamp()
        assert exp > t, body
    # Three certificates, three sessions at least, no request the fake refused.
    assert {str(a.serial), str(b.serial), str(c.serial)} <= set(serials())
    assert all(r.verdict == "accepted" for r in fake_ra.requests), [
        r.reason for r in fake_ra.requests if r.verdict != "accepted"]
    # The rotations were seen as they happened, and the half-rotated pair was read again.
    assert "the certificate files changed" in log
    assert "certificate files not usable yet, reading them again" in log


def test_rotation_is_used_at_the_next_refresh(iamra_bin, pki, fake_ra, tmp_path):
    """A certificate that outlives its credentials is not watched: a rotated one is read at
    the next scheduled refresh (20 s sessions refresh after about 14 s), not before."""
    fake_ra.set_lifetime(20)
    certs = tmp_path / "certs"
    certs.mkdir()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    long_lived = lambda: make_leaf(pki.root, key="p256", not_before=now - dt.timedelta(seconds=5),  # noqa: E731
                                   not_after=now + dt.timedelta(days=1))
    a = long_lived()
    (certs / "tls.crt").write_bytes(a.cert_pem)
    (certs / "tls.key").write_bytes(key_pem(a.key))
    port = free_port()
    proc = subprocess.Popen(
        [str(iamra_bin), "serve", "--certificate", str(certs / "tls.crt"), "--private-key",
         str(certs / "tls.key"), "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN,
         "--role-arn", ROLE_ARN, "--port", str(port)],
        env=clean_env({"AWS_ENDPOINT_URL_ROLESANYWHERE": fake_ra.url}, home=tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: fake_ra.count >= 1 or proc.poll() is not None, 20, "the first session")
        first_at = time.monotonic()
        b = long_lived()
        (certs / "tls.key").write_bytes(key_pem(b.key))
        (certs / "tls.crt").write_bytes(b.cert_pem)
        time.sleep(5)
        assert fake_ra.count == 1, "refreshed before the schedule said so"
        wait_for(lambda: fake_ra.count >= 2, 25, "the scheduled refresh")
        assert time.monotonic() - first_at >= 8
        accepted = [r for r in fake_ra.requests if r.verdict == "accepted"]
        assert [r.serial for r in accepted[:2]] == [str(a.serial), str(b.serial)]
        assert proc.poll() is None
    finally:
        terminate(proc)
