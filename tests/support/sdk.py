"""Real AWS SDK clients as separate processes, for the SDK x delivery-mode matrix.

Four clients, each calling STS ``GetCallerIdentity`` with credentials from its own default chain,
configured only by the environment a test gives it (:func:`client_env`):

* ``js``: the AWS SDK for JavaScript v3 (``tests/sdk/js``: ``npm ci`` from its lock file, run by
  ``scripts/setup.sh``), ``node probe.mjs``; ``provider=`` picks an explicit provider of
  ``@aws-sdk/credential-providers`` instead of the client's default chain.
* ``boto3``: boto3 from ``.venv`` (``tests/sdk/python/probe.py``).
* ``rust``: the AWS SDK for Rust (``tests/sdk/rust``, ``aws-config`` + ``aws-sdk-sts``), the
  binary ``$SDK_MATRIX_RUST_CLIENT`` built by ``scripts/test.sh`` when its build is cached.
* ``cli``: AWS CLI v1 from ``.venv`` (``aws sts get-caller-identity``), a new process per call,
  as a shell script uses it.

The first three are long-lived: one process, one client, one credentials cache, driven line by
line (``call`` -> one JSON line), so refresh behaviour is the SDK's own.
:func:`client` returns an object with ``call() -> {"ok": bool, "arn"|"error": ...}`` and
``close()``; :func:`unavailable` tells why a client cannot run here (``None`` if it can).
"""
from __future__ import annotations

import json
import os
import pathlib
import queue
import shutil
import subprocess
import threading

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
SDK = ROOT / "tests" / "sdk"
CLIENTS = ("js", "boto3", "rust", "cli")
REGION = "us-east-1"


def rust_probe() -> pathlib.Path | None:
    path = os.environ.get("SDK_MATRIX_RUST_CLIENT")
    return pathlib.Path(path) if path and pathlib.Path(path).is_file() else None


def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run on this machine, or ``None``."""
    if kind == "js":
        if not shutil.which("node"):
            return "node is not installed"
        if not (SDK / "js" / "node_modules" / "@aws-sdk" / "client-sts").is_dir():
            return "tests/sdk/js/node_modules missing: run scripts/setup.sh (npm ci)"
    elif kind == "rust":
        if rust_probe() is None:
            return ("the AWS SDK for Rust probe (tests/sdk/rust) is built only when its build is "
                    "cached: scripts/test.sh builds it when $SDK_MATRIX_RUST_TARGET exists "
                    "(SDK_MATRIX_RUST=1 forces the first build) and sets SDK_MATRIX_RUST_CLIENT")
    elif kind == "cli":
        if not (ROOT / ".venv" / "bin" / "aws").exists():
            return ".venv/bin/aws missing: run scripts/setup.sh"
    return None


def client_env(home: pathlib.Path, **aws: str) -> dict[str, str]:
    """An environment with no AWS, proxy or product variables of the caller, no config or
    credentials files unless given, IMDS off unless an endpoint is given, plus ``aws``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "IAMRA_", "VAULT_", "BOTO", "NODE_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    home.mkdir(parents=True, exist_ok=True)
    env.update({
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "nonexistent" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "nonexistent" / "credentials"),
    })
    if "AWS_EC2_METADATA_SERVICE_ENDPOINT" not in aws:
        env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(aws)
    return env


class LongLived:
    """One SDK client process speaking the probe protocol."""

    def __init__(self, argv: list[str], env: dict[str, str], log: pathlib.Path):
        self.log = log
        self._err = open(log, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     bufsize=1)
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._next(120)
        assert first == {"ready": True}, first

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout: float) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer in {timeout} s; log:\n{self.stderr()}") from None
        if line is None:
            raise AssertionError(f"client exited {self.proc.wait()}; log:\n{self.stderr()}")
        return json.loads(line)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def call(self, timeout: float = 90) -> dict:
        self.proc.stdin.write("call\n")
        self.proc.stdin.flush()
        return self._next(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._err.close()


class Cli:
    """AWS CLI v1: ``aws sts get-caller-identity``, one process per call."""

    def __init__(self, endpoint: str, env: dict[str, str], log: pathlib.Path):
        self.endpoint, self.env, self.log = endpoint, env, log

    def call(self, timeout: float = 90) -> dict:
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "aws"), "sts", "get-caller-identity",
                               "--endpoint-url", self.endpoint, "--output", "json"],
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        with open(self.log, "a") as f:
            f.write(proc.stderr)
        if proc.returncode != 0:
            return {"ok": False, "error": proc.stderr.strip()[-2000:]}
        r = json.loads(proc.stdout)
        return {"ok": True, "arn": r["Arn"], "account": r["Account"]}

    def close(self) -> None:
        pass


def client(kind: str, endpoint: str, env: dict[str, str], log: pathlib.Path,
           provider: str | None = None):
    """Start a client of ``kind`` (see :data:`CLIENTS`) calling STS at ``endpoint``."""
    if kind == "js":
        argv = ["node", str(SDK / "js" / "probe.mjs"), "--endpoint", endpoint]
        if provider:
            argv += ["--provider", provider]
        return LongLived(argv, env, log)
    assert provider is None, "explicit providers exist only for js"
    if kind == "boto3":
        return LongLived([str(ROOT / ".venv" / "bin" / "python"),
                          str(SDK / "python" / "probe.py"), "--endpoint", endpoint], env, log)
    if kind == "rust":
        return LongLived([str(rust_probe()), "--endpoint", endpoint], env, log)
    if kind == "cli":
        return Cli(endpoint, env, log)
    raise ValueError(kind)


def versions() -> dict[str, str]:
    """The versions of the clients installed here (printed at the start of an SDK-matrix run)."""
    out = {}
    lock = SDK / "js" / "package-lock.json"
    if lock.exists():
        pkgs = json.loads(lock.read_text())["packages"]
        for name in ("@aws-sdk/client-sts", "@aws-sdk/credential-providers",
                     "@aws-sdk/credential-provider-node", "@aws-sdk/credential-provider-http",
                     "@smithy/credential-provider-imds"):
            entry = pkgs.get(f"node_modules/{name}")
            if entry:
                out[name] = entry["version"]
    py = ROOT / ".venv" / "bin" / "python"
    if py.exists():
        # awscli v1 carries its own botocore (importing awscli first replaces `botocore`).
        for code, names in (("import boto3, botocore; print(boto3.__version__, botocore.__version__)",
                             ("boto3", "botocore")),
                            ("import awscli, botocore; print(awscli.__version__, botocore.__version__)",
                             ("awscli", "awscli's botocore"))):
            got = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
            if got.returncode == 0:
                out.update(zip(names, got.stdout.split()))
    cargo_lock = SDK / "rust" / "Cargo.lock"
    if cargo_lock.exists():
        text = cargo_lock.read_text()
        for name in ("aws-config", "aws-sdk-sts"):
            marker = f'name = "{name}"\nversion = "'
            i = text.find(marker)
            if i >= 0:
                out[name] = text[i + len(marker):].split('"', 1)[0]
    return out
