"""Shared pytest fixtures for the integration tests.

The tests drive the built binary (``$IAMRA_BIN``) against real or independent peers:
an OpenBao dev server, a fake Kubernetes TokenReview API and a fake IAM Roles Anywhere endpoint
that verifies every request on its own (see ``tests/fakes/``). Fixtures live in
``tests/support/*`` and are loaded here as plugins.
"""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

pytest_plugins = [
    "support.pki",
    "support.fake_ra",
    "support.openbao",
    "support.sts",
    "support.sdk_refresh",
    "support.hardware",
]


def _find_binary() -> pathlib.Path:
    env = os.environ.get("IAMRA_BIN")
    if env:
        return pathlib.Path(env)
    for cand in (
        ROOT / "target/x86_64-unknown-linux-musl/release/iamra-bootstrap",
        ROOT / "target/release/iamra-bootstrap",
        ROOT / "target/debug/iamra-bootstrap",
    ):
        if cand.exists():
            return cand
    raise RuntimeError("no built binary: run `cargo build` or set IAMRA_BIN")


@pytest.fixture(scope="session")
def iamra_bin() -> pathlib.Path:
    return _find_binary()


def clean_env(extra=None, home=None):
    """An environment with none of the variables the binary reads, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IAMRA_", "VAULT_", "AWS_", "BAO_"))
        and k not in ("ROLE_ARN", "ANCHOR_ARN", "PROFILE_ARN", "HTTPS_PROXY", "HTTP_PROXY",
                      "https_proxy", "http_proxy", "XDG_CACHE_HOME")
    }
    if home is not None:
        env["HOME"] = str(home)
        env["XDG_CACHE_HOME"] = str(pathlib.Path(home) / ".cache")
    env.update(extra or {})
    return env


@pytest.fixture
def run_bin(iamra_bin, tmp_path):
    """Run the binary with a clean environment (HOME = a temp dir). Returns CompletedProcess."""

    def run(args, env=None, timeout=60, check=False, **kw):
        proc = subprocess.run(
            [str(iamra_bin), *[str(a) for a in args]],
            env=clean_env(env, home=tmp_path / "home"),
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
        return proc

    (tmp_path / "home").mkdir(exist_ok=True)
    return run
