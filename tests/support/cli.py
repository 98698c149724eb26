"""Assertions for the binary's output contract (``docs/cli-contract.md``).

* Exit codes: ``EXIT_USAGE`` (2: bad flag, ARN, cert/key, unreadable file), ``EXIT_VAULT`` (3),
  ``EXIT_ROLES_ANYWHERE`` (4), ``EXIT_OUTPUT`` (5); 1 is anything else.
* ``assert_error(proc, *needles, exit_code=None)``: the failure contract -- non-zero exit (the
  given code when one is passed), nothing on stdout, exactly one stderr line starting with
  ``iamra-bootstrap: error: `` that contains every needle (case-insensitive). Returns the line.
* ``credential_process_json(creds)``: the exact ``credential_process`` stdout expected for a
  Roles Anywhere ``credentials`` object (compact JSON, fixed key order, no trailing newline).
"""
from __future__ import annotations

import json
import subprocess

ERROR_PREFIX = "iamra-bootstrap: error: "
EXIT_USAGE = 2
EXIT_VAULT = 3
EXIT_ROLES_ANYWHERE = 4
EXIT_OUTPUT = 5


def assert_error(proc: subprocess.CompletedProcess, *needles: str,
                 exit_code: int | None = None) -> str:
    detail = f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert proc.returncode != 0, detail
    if exit_code is not None:
        assert proc.returncode == exit_code, detail
    assert proc.stdout in ("", b""), detail
    stderr = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
    line = stderr[:-1] if stderr.endswith("\n") else stderr
    assert line and "\n" not in line and "\r" not in line, f"not exactly one line\n{detail}"
    assert line.startswith(ERROR_PREFIX), detail
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} missing\n{detail}"
    return line


def credential_process_json(creds: dict) -> str:
    return json.dumps({
        "Version": 1,
        "AccessKeyId": creds["accessKeyId"],
        "SecretAccessKey": creds["secretAccessKey"],
        "SessionToken": creds["sessionToken"],
        "Expiration": creds["expiration"],
    }, separators=(",", ":"))
