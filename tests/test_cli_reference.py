"""The flag and env reference (docs/reference.md) is the binary's own --help, and every
option the contract names is there, with its environment variable."""
import os
import pathlib
import re
import subprocess

import pytest

from support.cli import assert_error

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_reference_matches_help(iamra_bin, tmp_path):
    out = tmp_path / "reference.md"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "IAMRA_BIN": str(iamra_bin), "OUT": str(out)}
    subprocess.run(["bash", str(ROOT / "scripts/gen-reference.sh")], env=env, check=True,
                   capture_output=True)
    assert out.read_text() == (ROOT / "docs/reference.md").read_text(), (
        "docs/reference.md is stale: run scripts/gen-reference.sh")


def test_every_contract_option_is_documented():
    contract = (ROOT / "docs/cli-contract.md").read_text()
    reference = " ".join((ROOT / "docs/reference.md").read_text().split())
    flags = set(re.findall(r"`(--[a-z0-9-]+)`", contract))
    envs = set(re.findall(r"`(IAMRA_[A-Z0-9_]+)`", contract))
    assert len(flags) > 30 and len(envs) > 30
    for flag in flags:
        assert flag in reference, flag
    for env in envs:  # secrets are listed without their value ([env: NAME])
        assert f"[env: {env}=" in reference or f"[env: {env}]" in reference, env
    for legacy in ("ANCHOR_ARN", "PROFILE_ARN", "ROLE_ARN", "VAULT_ADDR", "VAULT_ROLE", "VAULT_CERT_CN",
                   "AWS_ENDPOINT_URL_ROLESANYWHERE", "AWS_SHARED_CREDENTIALS_FILE"):
        assert f"fallback env: {legacy}" in reference, legacy


def test_manifests_and_docs_use_only_known_variables():
    """A misspelt IAMRA_* in a manifest or a README would be silently ignored by the binary."""
    reference = (ROOT / "docs/reference.md").read_text()
    known = set(re.findall(r"\[env: (IAMRA_[A-Z0-9_]+)[=\]]", reference))
    sources = [*ROOT.glob("manifests/**/*.yaml"), *ROOT.glob("charts/**/*.yaml"),
               *ROOT.glob("charts/**/*.tpl"), *ROOT.glob("charts/**/*.txt"),
               ROOT / "README.md", *ROOT.glob("*/README.md"),
               ROOT / "scripts/demo.sh", ROOT / "vault/dev.sh"]
    for path in sources:
        for name in set(re.findall(r"\bIAMRA_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())):
            if name in ("IAMRA_BIN", "IAMRA_IMAGE") or name.startswith("IAMRA_DEV_"):
                continue  # test and dev-script settings, not the binary's
            assert name in known, f"{path.relative_to(ROOT)}: {name} is not an option of the binary"


@pytest.mark.parametrize("flag", ["--cert-selector", "--system-store-name",
                                  "--use-latest-expiring-certificate"])
def test_aws_signing_helper_key_store_flags_fail_loudly(run_bin, flag):
    """A credential_process line copied from aws_signing_helper must not lose a flag silently."""
    assert_error(run_bin(["credential-process", flag]), flag.split("=")[0], "not supported",
                 "--private-key", exit_code=2)
