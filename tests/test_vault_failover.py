"""Vault in a failover (issue 21), end to end against a real OpenBao behind a front that
answers as a Vault HA cluster does while its active node is gone (``tests/fakes/vaultfront.py``):
a standby's ``307`` to the dead active node, a load balancer's HTML ``503``, an answer lost
after Vault ran the request; and ``VAULT_ADDR`` listing several addresses, the first dead.

The whole cluster (3 raft nodes behind haproxy, killed and stepped down under a herd) is
``bench/ha.sh``; these are the same answers, one at a time, in the CI budget.
"""
from __future__ import annotations

import pytest

from fakes.vaultfront import Rule, VaultFront
from support.cli import EXIT_VAULT
from support.openbao import free_port
from test_init import init, make_ra, ra, sa_token_file  # noqa: F401  (fixtures)

ERROR_PREFIX = "iamra-bootstrap: error: "


@pytest.fixture
def dead_addr():
    """An address nobody listens on: connection refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def front(openbao):
    fronts = []

    def make(*rules):
        f = VaultFront(openbao.addr, list(rules)).start()
        fronts.append(f)
        return f

    yield make
    for f in fronts:
        f.stop()


def retry_lines(run) -> list[str]:
    return [ln for ln in run.stderr.splitlines() if "will retry" in ln]


def test_a_standby_redirect_is_retried_against_vault_addr(init, openbao, ra, front, dead_addr):
    # A standby that cannot reach the active node answers 307 to it (here: a dead address)
    # for login, sign and revoke alike; each is retried against VAULT_ADDR, not followed.
    f = front(Rule("/login", "redirect", times=2, location=dead_addr),
              Rule("/sign/", "redirect", location=dead_addr),
              Rule("revoke-self", "redirect", location=dead_addr))
    mark = openbao.audit_mark()
    run = init("--vault-addr", f.url, ra=ra).ok()
    assert f.actions("/login") == ["redirect", "redirect", "proxy"]
    assert f.actions("/sign/") == ["redirect", "proxy"]
    assert f.actions("revoke-self") == ["redirect", "proxy"]
    lines = retry_lines(run)
    assert len(lines) == 4, run.stderr
    assert all(f"a standby could not reach the active node (307 to {dead_addr})" in ln
               for ln in lines), run.stderr
    # Retried soon (the failover cap), and the revoke was not dropped: no token left.
    assert run.elapsed < 15, run.elapsed
    tokens = openbao.issued_tokens(mark)
    assert len(tokens) == 1
    assert openbao.lookup_accessor(tokens[0]["accessor"]) is None
    # Vault falls back to a 307 when forwarding fails, which may be after the active node ran
    # the login: the run names the possible orphan once.
    assert run.stderr.count("possible orphan token") == 1, run.stderr
    assert "could not revoke" not in run.stderr
    assert ra.count == 1


def test_several_addresses_the_first_one_dead(init, openbao, ra, dead_addr):
    run = init("--vault-addr", f"{dead_addr}, {openbao.addr}", ra=ra).ok()
    lines = retry_lines(run)
    # One refused connection, then every call goes to the address that answered.
    assert len(lines) == 1, run.stderr
    assert "connection failed" in lines[0] and dead_addr in lines[0], lines[0]
    # Refused: nothing ran, so no token can have been orphaned.
    assert "orphan" not in run.stderr, run.stderr
    assert ra.count == 1


def test_a_load_balancer_with_no_node_gives_up_in_words(init, openbao, ra, front):
    f = front(Rule("/login", "html", times=10_000, status=503))
    run = init("--vault-addr", f.url, ra=ra, timeout="3s")
    assert run.returncode == EXIT_VAULT, run.stderr
    line = run.error
    assert "no Vault node available behind VAULT_ADDR (503 from the load balancer)" in line, line
    assert "<" not in line and "html" not in line.lower(), line
    assert "raise --timeout" in line, line
    # Retried at the failover pace: a 1 s cap gives several attempts in 3 s.
    assert len(f.actions("/login")) >= 4, f.seen


def test_lost_answers_orphan_token_warning_and_revoke_already_done(init, openbao, ra, front):
    # The first login runs on Vault but its answer is lost (an HTML 502): its token is held by
    # nobody, which the run says once. The first revoke runs too and its answer is lost: the
    # retry gets 403 (the token is gone), which is done, not a warning.
    f = front(Rule("/login", "lose"), Rule("revoke-self", "lose"))
    mark = openbao.audit_mark()
    run = init("--vault-addr", f.url, ra=ra).ok()
    assert f.actions("/login") == ["lose", "proxy"]
    assert f.actions("revoke-self") == ["lose", "proxy"]
    assert run.stderr.count("possible orphan token") == 1, run.stderr
    assert "an earlier attempt did it" in run.stderr, run.stderr
    assert "could not revoke" not in run.stderr, run.stderr
    tokens = openbao.issued_tokens(mark)
    assert len(tokens) == 2
    # The orphan lives on (until its TTL); the token the run used is revoked.
    assert openbao.lookup_accessor(tokens[0]["accessor"]) is not None
    assert openbao.lookup_accessor(tokens[1]["accessor"]) is None
    assert ra.count == 1


def test_batch_tokens_leave_no_orphan_to_warn_about(init, openbao_factory):
    ob = openbao_factory()
    ob.configure(TOKEN_TYPE="batch")
    fake = make_ra(ob)
    f = VaultFront(ob.addr, [Rule("/login", "lose")]).start()
    try:
        token = ob.write_sa_token(ob.dir / "sa.jwt")
        run = init("--vault-addr", f.url, "--service-account-token-file", token, ob=ob,
                   ra=fake).ok()
        assert f.actions("/login") == ["lose", "proxy"]
        assert "orphan" not in run.stderr, run.stderr
        assert fake.count == 1
    finally:
        f.stop()
        fake.stop()
