"""pytest plugin: the fake IAM Roles Anywhere endpoint as a fixture, plus shared constants.

* ``fake_ra`` (function scope): a started :class:`fakes.rolesanywhere.FakeRolesAnywhere` in
  ``REGION`` trusting the ``pki`` root (so leaves issued by the root directly or through the
  ``pki`` intermediate are trusted); stopped after the test. Reconfigure it per test with
  ``fail_next``, ``set_lifetime`` or ``accept_role_session_name = True``.
* ``TA_ARN``, ``PROFILE_ARN``, ``ROLE_ARN`` (and ``OTHER_ROLE_ARN``): well-formed ARNs in
  ``REGION`` / ``ACCOUNT`` that the fake accepts.
* ``ra_flags(fake, ...)``: the Roles Anywhere command-line flags of the binary pointing at a fake.
"""
from __future__ import annotations

import pytest

from fakes.rolesanywhere import FakeRolesAnywhere

REGION = "us-east-1"
ACCOUNT = "123456789012"
TA_ARN = (f"arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:"
          "trust-anchor/11111111-2222-3333-4444-555555555555")
PROFILE_ARN = (f"arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:"
               "profile/66666666-7777-8888-9999-000000000000")
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ExampleRole"
OTHER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/OtherRole"


def ra_flags(fake: FakeRolesAnywhere, trust_anchor_arn: str = TA_ARN,
             profile_arn: str = PROFILE_ARN, role_arn: str = ROLE_ARN) -> list[str]:
    """``--trust-anchor-arn/--profile-arn/--role-arn/--endpoint`` for the binary."""
    return ["--trust-anchor-arn", trust_anchor_arn, "--profile-arn", profile_arn,
            "--role-arn", role_arn, "--endpoint", fake.url]


@pytest.fixture
def fake_ra(pki):
    fake = FakeRolesAnywhere(pki.trust_anchors, region=REGION)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
