"""The Roles Anywhere host names the binary resolves, proven on the wire.

Contract (``src/endpoints.rs``, ``docs/rolesanywhere-protocol.md`` §1.1, §3): the host
is ``rolesanywhere.<region>.<dnsSuffix>`` of the trust anchor's partition; FIPS
(``AWS_USE_FIPS_ENDPOINT`` / ``use_fips_endpoint``) makes it ``rolesanywhere-fips.…``, dual-stack
(``AWS_USE_DUALSTACK_ENDPOINT`` / ``use_dualstack_endpoint``) uses the partition's dual-stack
suffix; the selected profile of ``AWS_CONFIG_FILE`` / ``~/.aws/config`` counts (``AWS_PROFILE``);
``AWS_ENDPOINT_URL_ROLESANYWHERE``, then the profile's ``services`` section, then
``AWS_ENDPOINT_URL`` override the host; FIPS or dual-stack together with such a configured endpoint
is a configuration error (exit 2), as in the SDKs' endpoint rules.

How: ``credential-process --with-proxy`` with ``HTTPS_PROXY`` at a local proxy that records the
``CONNECT host:port`` and refuses the tunnel, so nothing leaves the machine; the run then fails
with exit 4 and one error line naming the URL.
"""
from __future__ import annotations

import pytest

from support.cli import EXIT_ROLES_ANYWHERE, EXIT_USAGE, assert_error
from support.connect_proxy import RecordingConnectProxy

ACCOUNT = "123456789012"

# partition, region, dnsSuffix, dualStackDnsSuffix (partitions.json of the AWS SDKs)
PARTITIONS = [
    ("aws", "us-east-1", "amazonaws.com", "api.aws"),
    ("aws-cn", "cn-north-1", "amazonaws.com.cn", "api.amazonwebservices.com.cn"),
    ("aws-us-gov", "us-gov-west-1", "amazonaws.com", "api.aws"),
    ("aws-iso", "us-iso-east-1", "c2s.ic.gov", "api.aws.ic.gov"),
    ("aws-iso-b", "us-isob-east-1", "sc2s.sgov.gov", "api.aws.scloud"),
    ("aws-iso-e", "eu-isoe-west-1", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"),
    ("aws-iso-f", "us-isof-south-1", "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
    ("aws-eusc", "eusc-de-east-1", "amazonaws.eu", "api.amazonwebservices.eu"),
]


@pytest.fixture
def proxy():
    p = RecordingConnectProxy().start()
    try:
        yield p
    finally:
        p.stop()


def arns(partition: str, region: str) -> list[str]:
    return ["--trust-anchor-arn", f"arn:{partition}:rolesanywhere:{region}:{ACCOUNT}:trust-anchor/ta",
            "--profile-arn", f"arn:{partition}:rolesanywhere:{region}:{ACCOUNT}:profile/pr",
            "--role-arn", f"arn:{partition}:iam::{ACCOUNT}:role/R"]


def connect_host(run_bin, pki, proxy, partition, region, env=None, home_config=None,
                 tmp_path=None) -> str:
    """Runs credential-process through the proxy; returns the one host:port it asked for."""
    leaf = pki.leaf("p256")
    if home_config is not None:
        (tmp_path / "home" / ".aws").mkdir(parents=True, exist_ok=True)
        (tmp_path / "home" / ".aws" / "config").write_text(home_config)
    proc = run_bin(["credential-process", "--certificate", leaf.cert_pem,
                    "--private-key", leaf.key(), *arns(partition, region), "--no-cache",
                    "--with-proxy", "--timeout", "1s"],
                   env={"HTTPS_PROXY": proxy.url, "https_proxy": proxy.url, **(env or {})})
    assert_error(proc, exit_code=EXIT_ROLES_ANYWHERE)
    hosts = set(proxy.take())
    assert len(hosts) == 1, hosts
    return hosts.pop()


@pytest.mark.parametrize("partition,region,dns,dual", PARTITIONS, ids=[p[0] for p in PARTITIONS])
def test_every_partition_and_variant(run_bin, pki, proxy, partition, region, dns, dual):
    host = lambda env: connect_host(run_bin, pki, proxy, partition, region, env)  # noqa: E731
    assert host({}) == f"rolesanywhere.{region}.{dns}:443"
    assert host({"AWS_USE_FIPS_ENDPOINT": "true"}) == f"rolesanywhere-fips.{region}.{dns}:443"
    assert host({"AWS_USE_DUALSTACK_ENDPOINT": "TRUE"}) == f"rolesanywhere.{region}.{dual}:443"
    assert host({"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"}) \
        == f"rolesanywhere-fips.{region}.{dual}:443"


CONFIG = """\
[default]
use_fips_endpoint = true

[profile v6]
use_dualstack_endpoint = true

[profile local]
services = local-endpoints
endpoint_url = https://everything.example.test

[services local-endpoints]
rolesanywhere =
  endpoint_url = https://ra.example.test:8443
"""


def test_shared_config_profile(run_bin, pki, proxy, tmp_path):
    host = lambda env: connect_host(run_bin, pki, proxy, "aws", "eu-west-1", env,  # noqa: E731
                                    home_config=CONFIG, tmp_path=tmp_path)
    assert host({}) == "rolesanywhere-fips.eu-west-1.amazonaws.com:443"
    assert host({"AWS_PROFILE": "v6"}) == "rolesanywhere.eu-west-1.api.aws:443"
    # The environment wins over the profile.
    assert host({"AWS_USE_FIPS_ENDPOINT": "false"}) == "rolesanywhere.eu-west-1.amazonaws.com:443"
    assert host({"AWS_PROFILE": "local"}) == "ra.example.test:8443"
    assert host({"AWS_PROFILE": "local", "AWS_ENDPOINT_URL_ROLESANYWHERE": "https://env.example.test"}) \
        == "env.example.test:443"


def test_aws_config_file_and_endpoint_url(run_bin, pki, proxy, tmp_path):
    cfg = tmp_path / "elsewhere.ini"
    cfg.write_text("[profile dev]\nuse_dualstack_endpoint = true\n")
    host = lambda env: connect_host(run_bin, pki, proxy, "aws-cn", "cn-northwest-1", env)  # noqa: E731
    assert host({"AWS_CONFIG_FILE": str(cfg), "AWS_PROFILE": "dev"}) \
        == "rolesanywhere.cn-northwest-1.api.amazonwebservices.com.cn:443"
    assert host({"AWS_ENDPOINT_URL": "https://all.example.test"}) == "all.example.test:443"
    # AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns the configured endpoint off.
    assert host({"AWS_ENDPOINT_URL": "https://all.example.test", "AWS_USE_FIPS_ENDPOINT": "true",
                 "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}) \
        == "rolesanywhere-fips.cn-northwest-1.amazonaws.com.cn:443"


def test_bad_settings_are_one_line_errors(run_bin, pki, tmp_path):
    leaf = pki.leaf("p256")
    base = ["credential-process", "--certificate", leaf.cert_pem, "--private-key", leaf.key(),
            *arns("aws", "us-east-1"), "--no-cache"]
    proc = run_bin(base, env={"AWS_USE_FIPS_ENDPOINT": "yes"})
    assert_error(proc, "AWS_USE_FIPS_ENDPOINT", "true or false", exit_code=EXIT_USAGE)
    (tmp_path / "home" / ".aws").mkdir(parents=True)
    (tmp_path / "home" / ".aws" / "config").write_text("[default]\nuse_dualstack_endpoint = 1\n")
    proc = run_bin(base)
    assert_error(proc, "use_dualstack_endpoint", ".aws/config", exit_code=EXIT_USAGE)
    (tmp_path / "home" / ".aws" / "config").write_text("[default]\n")
    proc = run_bin(base, env={"AWS_USE_FIPS_ENDPOINT": "true",
                              "AWS_ENDPOINT_URL_ROLESANYWHERE": "https://ra.example.test"})
    assert_error(proc, "FIPS", "https://ra.example.test", "AWS_ENDPOINT_URL_ROLESANYWHERE",
                 exit_code=EXIT_USAGE)
