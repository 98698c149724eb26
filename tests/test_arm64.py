"""The static arm64 binary (``scripts/build-arm64.sh``), run under ``qemu-aarch64-static``.

Contract (issue 11): ``target/aarch64-unknown-linux-musl/release/iamra-bootstrap`` (or
``$IAMRA_ARM64_BIN``) is a static aarch64 ELF, within the size limit of the amd64 image, and
passes the same ``credential-process`` integration test as the amd64 binary: the whole of
``tests/test_credential_process.py`` is run with ``IAMRA_BIN`` pointing at a wrapper that
executes the arm64 binary under qemu, against the same verifying fake Roles Anywhere.

Skipped, saying so, only when the arm64 binary is not built (it is a second release build;
``BUILD_ARM64=1 scripts/test.sh`` or ``scripts/build-arm64.sh`` builds it).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARM64_BIN = pathlib.Path(os.environ.get(
    "IAMRA_ARM64_BIN", ROOT / "target/aarch64-unknown-linux-musl/release/iamra-bootstrap"))
MAX_IMAGE_BYTES = 8_000_000   # tests/test_container.py: the same limit for both architectures

pytestmark = pytest.mark.skipif(
    not ARM64_BIN.is_file(),
    reason=f"arm64 binary not built ({ARM64_BIN}); run scripts/build-arm64.sh or BUILD_ARM64=1 scripts/test.sh")


@pytest.fixture(scope="module")
def qemu() -> str:
    exe = shutil.which("qemu-aarch64-static")
    assert exe, "qemu-aarch64-static missing: SETUP_ARM64=1 scripts/setup.sh installs it"
    return exe


@pytest.fixture(scope="module")
def wrapper(qemu, tmp_path_factory) -> pathlib.Path:
    """An executable that runs the arm64 binary under qemu with the arguments it is given."""
    w = tmp_path_factory.mktemp("arm64") / "iamra-bootstrap"
    w.write_text(f'#!/bin/sh\nexec "{qemu}" "{ARM64_BIN}" "$@"\n')
    w.chmod(0o755)
    return w


def test_static_aarch64_within_the_size_limit(qemu):
    desc = subprocess.run(["file", "-b", str(ARM64_BIN)], capture_output=True, text=True,
                          check=True).stdout
    assert "ARM aarch64" in desc and "statically linked" in desc, desc
    assert ARM64_BIN.stat().st_size <= MAX_IMAGE_BYTES
    out = subprocess.run([qemu, str(ARM64_BIN), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("iamra-bootstrap ")


def test_credential_process_suite_passes_under_qemu(wrapper):
    env = {**os.environ, "IAMRA_BIN": str(wrapper)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests/test_credential_process.py"),
         "-q", "-rs", "-p", "no:cacheprovider", "-x"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(proc.stdout.splitlines()[-30:])
    assert proc.returncode == 0, f"{tail}\n{proc.stderr[-3000:]}"
    assert " passed" in tail and " failed" not in tail, tail
    # Only the skips the amd64 run makes too (the environment's, never the binary's).
    for line in proc.stdout.splitlines():
        if line.startswith("SKIPPED"):
            assert "root reads mode-000 files" in line, line
