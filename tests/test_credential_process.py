"""Integration tests of ``iamra-bootstrap credential-process`` with local certificate files.

Contract under test (``docs/cli-contract.md``, ``docs/rolesanywhere-protocol.md``):

* Success: stdout is exactly ``{"Version":1,"AccessKeyId":…,"SecretAccessKey":…,
  "SessionToken":…,"Expiration":…}`` with no trailing newline, and equals what Roles Anywhere
  issued. RSA-2048, EC P-256 and EC P-384 leaves; certificate PEM or DER, a PEM bundle's further
  certificates are intermediates, or ``--intermediates``; keys PKCS#8, PKCS#1 or SEC1 PEM.
* The request signs exactly ``content-type;host;x-amz-date;x-amz-x509[;x-amz-x509-chain]``;
  ``durationSeconds`` defaults to 3600 and must be in 900..43200 (checked before any request).
* Failures: exactly one stderr line ``iamra-bootstrap: error: …``, nothing on stdout; exit 2 for
  bad flags/ARNs/cert/key/unreadable files (no request sent), 4 for Roles Anywhere errors. 5xx
  and throttling are retried, 4xx are not.
* Cache (on by default, ``--cache-dir`` / ``IAMRA_CACHE_DIR`` / ``$XDG_CACHE_HOME``): identical
  calls are served from it, ``--no-cache`` bypasses it, files are mode 0600, credentials with
  less than 15 minutes left are not reused, concurrent processes are safe.
* ``--debug`` prints the canonical request and string to sign to stderr, never secrets.

Every call goes to the ``fake_ra`` fixture (``tests/fakes/rolesanywhere.py``), which verifies
each request independently; it trusts the ``pki`` root.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import re
import shlex
import stat
import subprocess
import time

import botocore.session
import pytest

from conftest import clean_env
from support.cli import (EXIT_ROLES_ANYWHERE, EXIT_USAGE, assert_error,
                         credential_process_json)
from support.fake_ra import (OTHER_ROLE_ARN, PROFILE_ARN, ROLE_ARN, TA_ARN, ra_flags)
from support.pki import make_ca, make_leaf, write_leaf_files
from support.ra_client import b64

SIGNED = ["content-type", "host", "x-amz-date", "x-amz-x509"]
ARNS = {"trustAnchorArn": TA_ARN, "profileArn": PROFILE_ARN, "roleArn": ROLE_ARN}


# ---- helpers ----------------------------------------------------------------------------------

def file_flags(files, cert: str = "pem", key: str = "pkcs8", chain: str = "auto") -> list:
    """``--certificate/--private-key[/--intermediates]`` for a :class:`LeafFiles`.

    ``cert``: ``pem`` | ``der`` | ``bundle`` (leaf then intermediates in one PEM file);
    ``chain``: ``auto`` (``--intermediates`` when the leaf has intermediates and ``cert`` is not
    ``bundle``) or ``none``.
    """
    cert_path = {"pem": files.cert_pem, "der": files.cert_der, "bundle": files.bundle_pem}[cert]
    flags = ["--certificate", cert_path, "--private-key", files.key(key)]
    if chain == "auto" and files.chain and cert != "bundle":
        flags += ["--intermediates", files.chain_pem]
    return flags


@pytest.fixture
def cp(run_bin, fake_ra):
    """Run ``credential-process`` against ``fake_ra`` with the given extra arguments."""

    def run(*args, env=None, fake=None, arns=None, timeout=60):
        return run_bin(["credential-process", *ra_flags(fake or fake_ra, **(arns or {})),
                        *args], env=env, timeout=timeout)

    return run


def arns_sent(rec) -> dict:
    """The three ARNs as the fake received them (query or JSON body)."""
    query = dict(rec.query)
    return {k: query.get(k, (rec.json or {}).get(k)) for k in ARNS}


def assert_success(proc, fake, *, chain=None, duration=3600):
    """Exit 0, stdout exactly the credential_process JSON of the last issued credentials, and
    the last request was a well-formed one."""
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    assert fake.count >= 1
    assert proc.stdout == credential_process_json(fake.issued[-1])
    rec = next(r for r in reversed(fake.requests) if r.verdict == "accepted")
    assert rec.signed_headers == SIGNED + (["x-amz-x509-chain"] if chain else [])
    if chain:
        assert rec.headers["x-amz-x509-chain"] == ",".join(b64(c.cert) for c in chain)
    else:
        assert "x-amz-x509-chain" not in rec.headers
    assert rec.json["durationSeconds"] == duration
    assert "roleSessionName" not in rec.json
    assert arns_sent(rec) == ARNS
    return rec


def expiry_of(stdout: str) -> dt.datetime:
    return dt.datetime.strptime(json.loads(stdout)["Expiration"],
                                "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


# ---- success paths ----------------------------------------------------------------------------

@pytest.mark.parametrize("chain", ["none", "intermediates-flag", "bundle"])
@pytest.mark.parametrize("key", ["rsa2048", "p256", "p384"])
def test_success_key_types_and_chains(cp, pki, fake_ra, key, chain):
    files = pki.leaf(key, via_intermediate=chain != "none")
    proc = cp(*file_flags(files, cert="bundle" if chain == "bundle" else "pem"))
    assert_success(proc, fake_ra, chain=files.chain)
    assert fake_ra.count == 1 and len(fake_ra.requests) == 1


@pytest.mark.parametrize("key, cert, key_fmt", [
    ("rsa2048", "pem", "pkcs1"), ("rsa2048", "der", "pkcs1"), ("rsa2048", "der", "pkcs8"),
    ("p256", "pem", "sec1"), ("p256", "der", "sec1"), ("p256", "der", "pkcs8"),
    ("p384", "pem", "sec1"), ("p384", "der", "sec1"), ("p384", "der", "pkcs8"),
])
def test_certificate_and_key_formats(cp, pki, fake_ra, key, cert, key_fmt):
    files = pki.leaf(key)
    assert_success(cp(*file_flags(files, cert=cert, key=key_fmt)), fake_ra)


def test_der_certificate_with_intermediates_file(cp, pki, fake_ra):
    files = pki.leaf("p256", via_intermediate=True)
    assert_success(cp(*file_flags(files, cert="der")), fake_ra, chain=files.chain)


def test_output_matches_issued_credentials(cp, pki, fake_ra):
    proc = cp(*file_flags(pki.leaf("p256")))
    assert not proc.stdout.endswith("\n")
    out = json.loads(proc.stdout)
    assert list(out) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken",
                         "Expiration"]
    assert type(out["Version"]) is int and out["Version"] == 1
    issued = fake_ra.issued[-1]
    assert (out["AccessKeyId"], out["SecretAccessKey"], out["SessionToken"], out["Expiration"]) \
        == (issued["accessKeyId"], issued["secretAccessKey"], issued["sessionToken"],
            issued["expiration"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out["Expiration"])


def test_role_session_name_sent(cp, pki, fake_ra):
    fake_ra.accept_role_session_name = True
    proc = cp(*file_flags(pki.leaf("p256")), "--role-session-name", "deploy-42")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == credential_process_json(fake_ra.issued[-1])
    assert fake_ra.requests[-1].json["roleSessionName"] == "deploy-42"


def test_role_session_name_refused(cp, pki, fake_ra):
    proc = cp(*file_flags(pki.leaf("p256")), "--role-session-name", "deploy-42")
    assert_error(proc, "roleSessionName", exit_code=EXIT_ROLES_ANYWHERE)
    assert fake_ra.count == 0 and len(fake_ra.requests) == 1


def test_default_session_duration(cp, pki, fake_ra):
    proc = cp(*file_flags(pki.leaf("p256")))
    assert_success(proc, fake_ra, duration=3600)
    remaining = (expiry_of(proc.stdout) - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 3500 < remaining <= 3600


@pytest.mark.parametrize("duration", [900, 43200])
def test_session_duration_bounds(cp, pki, fake_ra, duration):
    proc = cp(*file_flags(pki.leaf("p256")), "--session-duration", duration)
    assert_success(proc, fake_ra, duration=duration)


def test_session_duration_from_env(cp, pki, fake_ra):
    proc = cp(*file_flags(pki.leaf("p256")), env={"IAMRA_SESSION_DURATION": "7200"})
    assert_success(proc, fake_ra, duration=7200)


@pytest.mark.parametrize("duration", ["899", "43201", "0", "-3600", "1h"])
def test_session_duration_rejected_before_any_request(cp, pki, fake_ra, duration):
    proc = cp(*file_flags(pki.leaf("p256")), "--session-duration", duration)
    assert_error(proc, exit_code=EXIT_USAGE)
    assert len(fake_ra.requests) == 0


def test_arns_and_endpoint_from_env(run_bin, pki, fake_ra):
    env = {"IAMRA_TRUST_ANCHOR_ARN": TA_ARN, "IAMRA_PROFILE_ARN": PROFILE_ARN,
           "IAMRA_ROLE_ARN": ROLE_ARN, "AWS_ENDPOINT_URL_ROLESANYWHERE": fake_ra.url}
    proc = run_bin(["credential-process", *file_flags(pki.leaf("p256"))], env=env)
    assert_success(proc, fake_ra)


def test_legacy_env_names_and_precedence(run_bin, pki, fake_ra):
    """``IAMRA_*`` beats the short names; a flag beats both."""
    env = {"ANCHOR_ARN": TA_ARN, "PROFILE_ARN": PROFILE_ARN, "ROLE_ARN": "not-an-arn",
           "IAMRA_ROLE_ARN": ROLE_ARN, "IAMRA_ENDPOINT": fake_ra.url}
    proc = run_bin(["credential-process", *file_flags(pki.leaf("p256"))], env=env)
    assert_success(proc, fake_ra)
    env["IAMRA_ROLE_ARN"] = "also-not-an-arn"
    proc = run_bin(["credential-process", *file_flags(pki.leaf("p256")), "--role-arn",
                    ROLE_ARN, "--no-cache"], env=env)
    assert_success(proc, fake_ra)
    assert fake_ra.count == 2


# ---- local errors: exit 2, one line, no request -----------------------------------------------

@pytest.fixture
def local_error(cp, fake_ra):
    """Run with the given args and assert a local (exit 2, zero requests) failure."""

    def run(*args, needles=(), arns=None):
        line = assert_error(cp(*args, arns=arns), *needles, exit_code=EXIT_USAGE)
        assert len(fake_ra.requests) == 0, fake_ra.requests[-1].reason
        return line

    return run


NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def test_key_does_not_match_certificate(local_error, pki, tmp_path):
    files = pki.leaf("p256")
    other = pki.leaf("p256", via_intermediate=True)
    local_error("--certificate", files.cert_pem, "--private-key", other.key_pkcs8,
                needles=["does not match"])


def test_key_of_other_type_does_not_match(local_error, pki):
    local_error("--certificate", pki.leaf("rsa2048").cert_pem, "--private-key",
                pki.leaf("p256").key_pkcs8, needles=["does not match"])


@pytest.mark.parametrize("options, needles", [
    ({"v1": True}, ["v3"]),
    ({"key_usage_digital_signature": False}, ["digitalSignature"]),
    ({"not_before": NOW - dt.timedelta(days=30), "not_after": NOW - dt.timedelta(days=2)},
     ["expired", (NOW - dt.timedelta(days=2)).strftime("%Y-%m-%d")]),
    ({"not_before": NOW + dt.timedelta(days=3)},
     ["not valid before", (NOW + dt.timedelta(days=3)).strftime("%Y-%m-%d")]),
], ids=["v1", "no-digitalSignature", "expired", "not-yet-valid"])
@pytest.mark.parametrize("key", ["rsa2048", "p256"])
def test_invalid_certificate(local_error, pki, key, options, needles):
    files = pki.issue(key, **options)
    local_error(*file_flags(files), needles=needles)


@pytest.mark.parametrize("key", ["ed25519", "p521"])
def test_unsupported_key_types(local_error, pki, key):
    local_error(*file_flags(pki.issue(key)), needles=["unsupported"])


def test_missing_certificate_file(local_error, pki, tmp_path):
    missing = tmp_path / "nope" / "cert.pem"
    local_error("--certificate", missing, "--private-key", pki.leaf("p256").key_pkcs8,
                needles=[str(missing)])


def test_missing_key_file(local_error, pki, tmp_path):
    missing = tmp_path / "key.pem"
    local_error("--certificate", pki.leaf("p256").cert_pem, "--private-key", missing,
                needles=[str(missing)])


def test_missing_intermediates_file(local_error, pki, tmp_path):
    files = pki.leaf("p256", via_intermediate=True)
    missing = tmp_path / "chain.pem"
    local_error("--certificate", files.cert_pem, "--private-key", files.key_pkcs8,
                "--intermediates", missing, needles=[str(missing)])


def test_certificate_path_is_a_directory(local_error, pki, tmp_path):
    local_error("--certificate", tmp_path, "--private-key", pki.leaf("p256").key_pkcs8,
                needles=[str(tmp_path)])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files")
@pytest.mark.parametrize("which", ["cert", "key"])
def test_unreadable_files(local_error, pki, tmp_path, which):
    files = pki.leaf("p256")
    src = files.cert_pem if which == "cert" else files.key_pkcs8
    copy = tmp_path / src.name
    copy.write_bytes(src.read_bytes())
    copy.chmod(0)
    cert, key = (copy, files.key_pkcs8) if which == "cert" else (files.cert_pem, copy)
    local_error("--certificate", cert, "--private-key", key, needles=[str(copy)])


GARBAGE = {
    "bad-base64": b"-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n",
    "truncated": None,  # filled from a real certificate below
    "random-bytes": bytes(range(256)) * 4,
    "empty": b"",
    "text": b"hello\n",
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_certificate(local_error, pki, tmp_path, kind):
    files = pki.leaf("p256")
    data = GARBAGE[kind]
    if data is None:
        pem = files.cert_pem.read_text().splitlines()
        data = ("\n".join(pem[:len(pem) // 2] + pem[-1:]) + "\n").encode()
    bad = tmp_path / "cert.pem"
    bad.write_bytes(data)
    local_error("--certificate", bad, "--private-key", files.key_pkcs8)


@pytest.mark.parametrize("kind", ["bad-base64", "random-bytes", "empty", "certificate"])
def test_garbage_key(local_error, pki, tmp_path, kind):
    files = pki.leaf("p256")
    data = files.cert_pem.read_bytes() if kind == "certificate" else GARBAGE[kind].replace(
        b"CERTIFICATE", b"PRIVATE KEY")
    bad = tmp_path / "key.pem"
    bad.write_bytes(data)
    local_error("--certificate", files.cert_pem, "--private-key", bad)


def test_garbage_intermediates(local_error, pki, tmp_path):
    files = pki.leaf("p256", via_intermediate=True)
    bad = tmp_path / "chain.pem"
    bad.write_bytes(GARBAGE["bad-base64"])
    local_error("--certificate", files.cert_pem, "--private-key", files.key_pkcs8,
                "--intermediates", bad)


@pytest.mark.parametrize("field, value, needle", [
    ("trust_anchor_arn", "not-an-arn", "trust anchor ARN"),
    ("trust_anchor_arn", PROFILE_ARN, "trust anchor ARN"),
    ("trust_anchor_arn", ROLE_ARN, "trust anchor ARN"),
    ("profile_arn", "arn:aws:rolesanywhere:us-east-1:123456789012:profile", "profile ARN"),
    ("profile_arn", TA_ARN, "profile ARN"),
    ("role_arn", "arn:aws:iam::123456789012:user/someone", "role ARN"),
    ("role_arn", PROFILE_ARN, "role ARN"),
    ("role_arn", "ExampleRole", "role ARN"),
])
def test_bad_arn(local_error, pki, field, value, needle):
    local_error(*file_flags(pki.leaf("p256")), arns={field: value}, needles=[needle])


def test_profile_region_differs_from_trust_anchor(local_error, pki):
    local_error(*file_flags(pki.leaf("p256")),
                arns={"profile_arn": PROFILE_ARN.replace("us-east-1", "eu-west-1")},
                needles=["region"])


@pytest.mark.parametrize("flag, needle", [
    ("--trust-anchor-arn", r"trust[ _-]anchor[ _-]arn"),
    ("--profile-arn", r"profile[ _-]arn"),
    ("--role-arn", r"role[ _-]arn"),
])
def test_missing_required_flag(run_bin, pki, fake_ra, flag, needle):
    args = ra_flags(fake_ra)
    i = args.index(flag)
    del args[i:i + 2]
    proc = run_bin(["credential-process", *args, *file_flags(pki.leaf("p256"))])
    line = assert_error(proc, exit_code=EXIT_USAGE)
    assert re.search(needle, line, re.I), line
    assert len(fake_ra.requests) == 0


def test_missing_private_key_flag(run_bin, pki, fake_ra):
    proc = run_bin(["credential-process", *ra_flags(fake_ra), "--certificate",
                    pki.leaf("p256").cert_pem])
    assert_error(proc, exit_code=EXIT_USAGE)
    assert len(fake_ra.requests) == 0


def test_unknown_flag(cp, pki, fake_ra):
    assert_error(cp(*file_flags(pki.leaf("p256")), "--no-such-flag"), exit_code=EXIT_USAGE)
    assert len(fake_ra.requests) == 0


# ---- remote errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["AccessDeniedException",
                                  "AccessDeniedException:http://internal.amazon.com/coral/"
                                  "com.amazon.coral.service/"])
def test_access_denied(cp, pki, fake_ra, code):
    fake_ra.fail_next(1, 403, code, "Access denied by the test")
    line = assert_error(cp(*file_flags(pki.leaf("p256"))), "AccessDenied",
                        exit_code=EXIT_ROLES_ANYWHERE)
    assert len(line) < 300, line
    # The code is cut at ':' (docs/rolesanywhere-protocol.md §4).
    assert "internal.amazon.com" not in line
    assert len(fake_ra.requests) == 1 and fake_ra.count == 0


def test_untrusted_certificate(cp, pki, fake_ra, tmp_path):
    ca = make_ca("unrelated root")
    files = write_leaf_files(tmp_path / "other", make_leaf(ca, key="p256"))
    line = assert_error(cp(*file_flags(files)), "Untrusted", exit_code=EXIT_ROLES_ANYWHERE)
    assert len(line) < 300, line
    assert len(fake_ra.requests) == 1
    assert "issued neither" in fake_ra.requests[-1].reason


@pytest.mark.parametrize("status, code", [(500, "InternalServerException"),
                                          (503, "ServiceUnavailableException"),
                                          (429, "ThrottlingException")])
def test_transient_errors_are_retried(cp, pki, fake_ra, status, code):
    fake_ra.fail_next(2, status, code, "try again")
    proc = cp(*file_flags(pki.leaf("p256")))
    assert_success(proc, fake_ra)
    assert len(fake_ra.requests) == 3 and fake_ra.count == 1
    assert all(r.valid for r in fake_ra.requests)  # every retry is a correctly signed request


def test_persistent_server_errors_give_up_at_the_deadline(cp, pki, fake_ra):
    """Retries stop at ``--timeout`` (the overall retry deadline, contract: Vault flags)."""
    fake_ra.fail_next(10_000, 500, "InternalServerException", "down")
    started = time.monotonic()
    line = assert_error(cp(*file_flags(pki.leaf("p256")), "--timeout", "5s", timeout=60),
                        exit_code=EXIT_ROLES_ANYWHERE)
    assert time.monotonic() - started < 30, line
    assert len(fake_ra.requests) >= 2 and fake_ra.count == 0


@pytest.mark.parametrize("status, code", [(400, "ValidationException"),
                                          (404, "ResourceNotFoundException")])
def test_client_errors_are_not_retried(cp, pki, fake_ra, status, code):
    fake_ra.fail_next(1, status, code, "no such thing")
    assert_error(cp(*file_flags(pki.leaf("p256"))), code.removesuffix("Exception"),
                 exit_code=EXIT_ROLES_ANYWHERE)
    assert len(fake_ra.requests) == 1 and fake_ra.count == 0


def test_endpoint_unreachable(cp, pki, fake_ra):
    fake_ra.stop()  # --endpoint still points at its (now closed) port
    assert_error(cp(*file_flags(pki.leaf("p256")), "--timeout", "5s", timeout=60))


# ---- cache ------------------------------------------------------------------------------------

def cache_files(directory: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_cache_hit(cp, pki, fake_ra, tmp_path):
    args = [*file_flags(pki.leaf("p256")), "--cache-dir", tmp_path / "cache"]
    first = cp(*args)
    assert_success(first, fake_ra)
    second = cp(*args)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert fake_ra.count == 1 and len(fake_ra.requests) == 1


def test_no_cache_calls_again(cp, pki, fake_ra, tmp_path):
    args = [*file_flags(pki.leaf("p256")), "--cache-dir", tmp_path / "cache"]
    first = cp(*args)
    second = cp(*args, "--no-cache")
    assert_success(second, fake_ra)
    assert second.stdout != first.stdout
    assert fake_ra.count == 2


def test_other_role_gets_its_own_session(cp, pki, fake_ra, tmp_path):
    args = [*file_flags(pki.leaf("p256")), "--cache-dir", tmp_path / "cache"]
    first = cp(*args)
    other = cp(*args, arns={"role_arn": OTHER_ROLE_ARN})
    assert other.returncode == 0, other.stderr
    assert other.stdout == credential_process_json(fake_ra.issued[-1]) != first.stdout
    assert arns_sent(fake_ra.requests[-1])["roleArn"] == OTHER_ROLE_ARN
    assert fake_ra.count == 2
    assert cp(*args).stdout == first.stdout and fake_ra.count == 2


def test_cache_files_are_private(cp, pki, fake_ra, tmp_path):
    cache = tmp_path / "cache"
    assert_success(cp(*file_flags(pki.leaf("p256")), "--cache-dir", cache), fake_ra)
    files = cache_files(cache)
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_default_cache_dir_is_xdg(cp, pki, fake_ra, tmp_path):
    # run_bin sets HOME=tmp_path/home and XDG_CACHE_HOME=$HOME/.cache
    assert_success(cp(*file_flags(pki.leaf("p256"))), fake_ra)
    assert cache_files(tmp_path / "home" / ".cache" / "iamra-bootstrap")
    cp(*file_flags(pki.leaf("p256")))
    assert fake_ra.count == 1


def test_cache_dir_from_env(cp, pki, fake_ra, tmp_path):
    cache = tmp_path / "env-cache"
    assert_success(cp(*file_flags(pki.leaf("p256")), env={"IAMRA_CACHE_DIR": str(cache)}),
                   fake_ra)
    assert cache_files(cache)


def test_nearly_expired_credentials_are_not_reused(cp, pki, fake_ra, tmp_path):
    fake_ra.set_lifetime(600)
    args = [*file_flags(pki.leaf("p256")), "--cache-dir", tmp_path / "cache"]
    first = cp(*args)
    assert_success(first, fake_ra)
    second = cp(*args)
    assert_success(second, fake_ra)
    assert second.stdout != first.stdout and fake_ra.count == 2


def test_credentials_with_time_left_are_reused(cp, pki, fake_ra, tmp_path):
    fake_ra.set_lifetime(1800)
    args = [*file_flags(pki.leaf("p256")), "--cache-dir", tmp_path / "cache"]
    assert cp(*args).stdout == cp(*args).stdout
    assert fake_ra.count == 1


def test_concurrent_processes(iamra_bin, pki, fake_ra, tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    cmd = [str(a) for a in ["credential-process", *ra_flags(fake_ra),
                            *file_flags(pki.leaf("p256")), "--cache-dir", tmp_path / "cache"]]
    procs = [subprocess.Popen([str(iamra_bin), *cmd], env=clean_env(home=home),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(*p.communicate(timeout=60), p.returncode) for p in procs]
    issued = [credential_process_json(c) for c in fake_ra.issued]
    for out, err, code in results:
        assert code == 0, err
        assert out in issued
    assert 1 <= fake_ra.count <= 2
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in cache_files(tmp_path / "cache"))


# ---- debug ------------------------------------------------------------------------------------

def test_debug_prints_canonical_request_but_no_secrets(cp, pki, fake_ra):
    files = pki.leaf("p256", via_intermediate=True)
    proc = cp(*file_flags(files), "--debug", "--no-cache")
    assert_success(proc, fake_ra, chain=files.chain)
    rec = fake_ra.requests[-1]
    for line in [*rec.canonical_request.split("\n"), *rec.string_to_sign.split("\n")]:
        if line:
            assert line in proc.stderr, f"debug output lacks {line[:80]!r}"
    issued = fake_ra.issued[-1]
    for secret in (issued["secretAccessKey"], issued["sessionToken"]):
        assert secret not in proc.stderr
    key_body = "".join(files.key_pkcs8.read_text().splitlines()[1:-1])
    assert key_body[:40] not in proc.stderr.replace("\n", "")


def test_debug_from_env(cp, pki, fake_ra):
    proc = cp(*file_flags(pki.leaf("p256")), "--no-cache", env={"IAMRA_DEBUG": "true"})
    assert_success(proc, fake_ra)
    assert fake_ra.requests[-1].string_to_sign.split("\n")[-1] in proc.stderr
    assert fake_ra.issued[-1]["secretAccessKey"] not in proc.stderr


# ---- botocore ---------------------------------------------------------------------------------

def test_botocore_credential_process(iamra_bin, pki, fake_ra, tmp_path, monkeypatch):
    files = pki.leaf("p384", via_intermediate=True)
    home = tmp_path / "boto-home"
    (home / ".aws").mkdir(parents=True)
    command = shlex.join(str(a) for a in [
        iamra_bin, "credential-process", *file_flags(files, cert="bundle"), *ra_flags(fake_ra),
        "--cache-dir", tmp_path / "cache"])
    config = home / ".aws" / "config"
    config.write_text(f"[profile iamra]\nregion = us-east-1\ncredential_process = {command}\n")
    env = clean_env({"AWS_CONFIG_FILE": str(config),
                     "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials")},
                    home=home)
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    creds = botocore.session.Session(profile="iamra").get_credentials().get_frozen_credentials()
    issued = fake_ra.issued[-1]
    assert (creds.access_key, creds.secret_key, creds.token) == (
        issued["accessKeyId"], issued["secretAccessKey"], issued["sessionToken"])
    assert fake_ra.count == 1
    assert fake_ra.requests[-1].headers["x-amz-x509-chain"] == b64(pki.intermediate.cert)
