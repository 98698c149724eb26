"""No tenant can become another (issue 20): a hostile tenant against our own setup.

The tenant is the ServiceAccount ``app`` in namespace ``team-a`` and holds only its own token
(minted by the fake "API server", checked by the fake TokenReview). It attacks an OpenBao dev
server configured by ``vault/configure.sh`` as ``vault/README.md`` tells an operator with several
teams to do it:

* the documented multi-tenant settings (one login role binding ``*`` in ``team-a,team-b``, the
  per-ServiceAccount PKI role, no fixed-CN role);
* the per-account recipe (the loop in ``vault/README.md``, run as written for team-a and team-b).

Every certificate it obtains is then judged the way IAM Roles Anywhere would judge it against
the trust policies ``aws/README.md`` step 3 builds (its ``jq`` command, run as written, on
``aws/trust-policy.json``), with the intermediate as the trust anchor (step 2): Roles Anywhere
maps the certificate's subject, issuer and SANs to the principal tags
``aws:PrincipalTag/x509Subject/<attr>``, ``x509Issuer/<attr>`` and ``x509SAN/<type>`` (first
value of each) and ``aws:SourceArn`` is the trust anchor; :func:`policy_allows` evaluates the
IAM conditions those policies use (``StringEquals``, ``StringLike``, ``ArnEquals``,
``ArnLike``). No route may yield a certificate another account's policy accepts; the tenant's
own certificate must pass its own policy (so the evaluator can say yes).

Then the two cache routes (``credential-process``: a different token behind the same path, a
planted entry in a folder that is not private to the caller) and the webhook's namespace policy
(rendered by the chart from values) against the real binary.
"""
from __future__ import annotations

import base64
import fnmatch
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import clean_env
from fakes.rolesanywhere import FakeRolesAnywhere
from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN
from support.openbao import CONFIGURE, ROOT, OpenBao, terminate

SUFFIX = "workload.internal"
ME = ("team-a", "app")
ACCOUNTS = [("team-a", "app"), ("team-b", "app"), ("team-b", "web")]
ANCHOR_ARN = "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/00000000-0000-0000-0000-0000000000aa"
ROLE_TEAM_A = "arn:aws:iam::123456789012:role/team-a-reader"
ROLE_TEAM_B = "arn:aws:iam::123456789012:role/team-b-reader"


def cn_of(ns: str, sa: str) -> str:
    return f"{sa}.{ns}.{SUFFIX}"


# ---- what IAM Roles Anywhere and IAM do with a certificate -------------------------------

ATTR = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "OU", NameOID.COUNTRY_NAME: "C",
        NameOID.STATE_OR_PROVINCE_NAME: "ST", NameOID.LOCALITY_NAME: "L"}


def principal_tags(leaf: x509.Certificate) -> dict[str, str]:
    """The session tags Roles Anywhere derives from a certificate (first value of each)."""
    tags: dict[str, str] = {}
    for prefix, name in (("x509Subject", leaf.subject), ("x509Issuer", leaf.issuer)):
        for attr in name:
            key = f"aws:PrincipalTag/{prefix}/{ATTR.get(attr.oid, attr.oid.dotted_string)}"
            tags.setdefault(key, attr.value)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = []
    for kind, cls in (("DNS", x509.DNSName), ("URI", x509.UniformResourceIdentifier),
                      ("Name", x509.DirectoryName)):
        values = [v for v in san if isinstance(v, cls)]
        if values:
            v = values[0].value
            tags[f"aws:PrincipalTag/x509SAN/{kind}"] = v.rfc4514_string() if kind == "Name" else v
    return tags


def iam_match(op: str, actual: str | None, wanted) -> bool:
    """One IAM condition operator on one key (any of the wanted values matches)."""
    wanted = wanted if isinstance(wanted, list) else [wanted]
    if actual is None:
        return False                       # a missing key fails every operator used here
    if op in ("StringEquals", "ArnEquals"):
        return actual in wanted
    if op in ("StringLike", "ArnLike"):    # * and ?, case-sensitive, across any character
        return any(fnmatch.fnmatchcase(actual, w.replace("[", "[[]")) for w in wanted)
    raise AssertionError(f"operator {op} not modelled: extend the evaluator")


def policy_allows(policy: dict, context: dict[str, str]) -> bool:
    """Whether a trust policy lets Roles Anywhere assume the role for this request context."""
    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] != "Allow" or st["Principal"] != {"Service": "rolesanywhere.amazonaws.com"}:
            continue
        if not {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"} <= set(actions):
            continue
        if all(iam_match(op, context.get(key), wanted)
               for op, conds in st.get("Condition", {}).items() for key, wanted in conds.items()):
            return True
    return False


def roles_anywhere_accepts(leaf: x509.Certificate, anchor: x509.Certificate,
                           policy: dict) -> bool:
    """CreateSession through ANCHOR_ARN with only the leaf (the anchor is the intermediate):
    the leaf must be signed by the anchor, then the role's trust policy decides."""
    try:
        leaf.verify_directly_issued_by(anchor)
    except Exception:
        return False
    return policy_allows(policy, {"aws:SourceArn": ANCHOR_ARN, **principal_tags(leaf)})


def readme_trust_policy(tmp: pathlib.Path, cn: str, issuer_cn: str) -> dict:
    """The trust policy as aws/README.md step 3 makes it: its jq command, run as written."""
    readme = (ROOT / "aws" / "README.md").read_text()
    m = re.search(r"^jq --arg ta .*?aws/trust-policy\.json > \"trust-policy\.\$SA\.json\"$",
                  readme, re.S | re.M)
    assert m, "aws/README.md no longer has the jq command of step 3"
    if not (tmp / "aws").exists():
        (tmp / "aws").symlink_to(ROOT / "aws")
    proc = subprocess.run(["bash", "-c", m.group(0)], capture_output=True, text=True,
                          timeout=30, cwd=tmp,
                          env={**os.environ, "TA_ARN": ANCHOR_ARN, "CN": cn,
                               "ISSUER_CN": issuer_cn, "SA": cn})
    assert proc.returncode == 0, proc.stderr
    return json.loads((tmp / f"trust-policy.{cn}.json").read_text())


# ---- the setup under attack --------------------------------------------------------------

@pytest.fixture(scope="module")
def ob(tmp_path_factory, sa_keys, tokenreview):
    """OpenBao configured with the documented multi-tenant settings (vault/README.md)."""
    server = OpenBao(tmp_path_factory.mktemp("tenants-openbao"), sa_keys, tokenreview).start()
    try:
        server.configure(PKI_ROLE="", PKI_ROLE_ALLOWED_DOMAINS="", PKI_ROLE_AUTH_METHODS="",
                         AUTH_METHODS="kubernetes jwt", K8S_BOUND_SA_NAMES="*",
                         K8S_BOUND_SA_NAMESPACES="team-a,team-b")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def anchor(ob) -> x509.Certificate:
    """The trust anchor: the intermediate (aws/README.md step 2, vault/README.md)."""
    r = ob.api("GET", f"{ob.pki_mount}/ca/pem", token=None)
    assert r.status_code == 200, r.text
    return x509.load_pem_x509_certificate(r.content)


@pytest.fixture(scope="module")
def policies(ob, anchor, tmp_path_factory) -> dict[tuple[str, str], dict]:
    """One role per account, its trust policy as aws/README.md builds it."""
    tmp = tmp_path_factory.mktemp("trust-policies")
    issuer_cn = anchor.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return {acct: readme_trust_policy(tmp, cn_of(*acct), issuer_cn) for acct in ACCOUNTS}


def csr(cn: str, sans: list[x509.GeneralName] | None = None) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def login(ob, method: str = "kubernetes", role: str | None = None, ns=ME[0], sa=ME[1]):
    r = ob.api("POST", f"auth/{method}/login",
               {"role": role or (ob.k8s_role if method == "kubernetes" else ob.jwt_role),
                "jwt": ob.mint_sa_token(ns, sa)}, token=None)
    return r


class Tally:
    """Every certificate the tenant obtained, judged against every account's policy."""

    def __init__(self, anchor, policies):
        self.anchor, self.policies = anchor, policies
        self.issued: list[tuple[str, x509.Certificate]] = []
        self.refused: list[tuple[str, int]] = []

    def record(self, route: str, r) -> None:
        if r.status_code == 200:
            pem = r.json()["data"]["certificate"]
            self.issued.append((route, x509.load_pem_x509_certificate(pem.encode())))
        else:
            self.refused.append((route, r.status_code))

    def accepted_by(self, leaf) -> list[tuple[str, str]]:
        return [acct for acct, p in self.policies.items()
                if roles_anywhere_accepts(leaf, self.anchor, p)]

    def assert_no_other_account(self) -> None:
        for route, leaf in self.issued:
            assert set(self.accepted_by(leaf)) <= {ME}, (route, leaf.subject.rfc4514_string(),
                                                         self.accepted_by(leaf))


VICTIM = cn_of("team-b", "app")
LOOK_ALIKES = [
    VICTIM,
    f"{VICTIM}@{cn_of(*ME)}",                       # the email form
    VICTIM.upper(), VICTIM + ".", "*.team-b." + SUFFIX, "app.team-b",
    "app.team\u2010b." + SUFFIX,                    # Unicode hyphen
    "\u0430pp.team-b." + SUFFIX,                    # Cyrillic a
    "xn--pp-8cd.team-b." + SUFFIX,                  # punycode
    f"{VICTIM}.{cn_of(*ME)}", f"{cn_of(*ME)}.team-b.{SUFFIX}",
    f"app.team-a.{SUFFIX}.team-b.{SUFFIX}",
]


@pytest.mark.parametrize("method", ["kubernetes", "jwt"])
def test_no_route_yields_another_accounts_certificate(ob, anchor, policies, method):
    tally = Tally(anchor, policies)
    r = login(ob, method)
    assert r.status_code == 200, r.text
    token = r.json()["auth"]["client_token"]
    mine = cn_of(*ME)
    sign = f"{ob.pki_mount}/sign/{ob.pki_templated_role}"
    issue = f"{ob.pki_mount}/issue/{ob.pki_templated_role}"
    # The tenant's own certificate: issued, and accepted by its own policy only.
    own = ob.api("POST", sign, {"csr": csr(mine)}, token=token)
    assert own.status_code == 200, own.text
    leaf = x509.load_pem_x509_certificate(own.json()["data"]["certificate"].encode())
    assert Tally(anchor, policies).accepted_by(leaf) == [ME]
    tally.record("own", own)

    for cn in LOOK_ALIKES:
        tally.record(f"sign {cn!r}", ob.api("POST", sign, {"csr": csr(cn)}, token=token))
        tally.record(f"issue {cn!r}", ob.api("POST", issue, {"common_name": cn}, token=token))
        tally.record(f"sign own CSR, common_name {cn!r}",
                     ob.api("POST", sign, {"csr": csr(mine), "common_name": cn}, token=token))
        tally.record(f"issue own CN, alt_names {cn!r}",
                     ob.api("POST", issue, {"common_name": mine, "alt_names": cn}, token=token))
    tally.record("CSR with the victim as DNS SAN", ob.api(
        "POST", sign, {"csr": csr(mine, [x509.DNSName(VICTIM)])}, token=token))
    tally.record("CSR with a URI SAN", ob.api(
        "POST", sign, {"csr": csr(mine, [x509.UniformResourceIdentifier(
            "spiffe://cluster.local/ns/team-b/sa/app")])}, token=token))
    for extra in ({"uri_sans": "spiffe://cluster.local/ns/team-b/sa/app"},
                  {"other_sans": f"1.3.6.1.4.1.311.20.2.3;UTF8:{VICTIM}"},
                  {"ip_sans": "10.0.0.1"}, {"exclude_cn_from_sans": True, "alt_names": VICTIM}):
        tally.record(f"issue own CN with {extra}",
                     ob.api("POST", issue, {"common_name": mine, **extra}, token=token))
    # Routes outside the templated role: the old fixed role, other roles, the CA itself.
    for path, body in ((f"{ob.pki_mount}/sign/bootstrapper", {"csr": csr(VICTIM)}),
                       (f"{ob.pki_mount}/sign-verbatim", {"csr": csr(VICTIM)}),
                       (f"{ob.pki_mount}/sign-verbatim/{ob.pki_templated_role}", {"csr": csr(VICTIM)}),
                       (f"{ob.pki_mount}/root/sign-intermediate", {"csr": csr("evil CA")}),
                       (f"{ob.pki_root_mount}/root/sign-intermediate", {"csr": csr("evil CA")}),
                       (f"{ob.pki_mount}/roles/evil", {"allow_any_name": True})):
        r = ob.api("POST", path, body, token=token)
        assert r.status_code == 403, (path, r.text)

    # The email form is refused outright (cn_validations: hostname), not issued.
    email = [(route, code) for route, code in tally.refused if "@" in route and "alt_names" not in route]
    assert email and all(code == 400 for _, code in email), email
    assert not any("@" in leaf.subject.rfc4514_string() for _, leaf in tally.issued)
    assert len(tally.issued) >= 2, "the evaluator never saw an issued certificate"
    tally.assert_no_other_account()


def test_logins_for_other_accounts_and_roles_are_refused(ob):
    # team-a's token names team-a/app: it cannot be anyone else, whatever role it asks for.
    assert login(ob).status_code == 200
    assert login(ob, ns="team-c").status_code == 403            # namespace not bound
    r = login(ob, role="team-b")
    assert r.status_code in (400, 403), r.text
    r = ob.api("POST", "auth/kubernetes/login", {"role": ob.k8s_role,
               "jwt": ob.mint_sa_token("team-a", "app", aud="https://kubernetes.default.svc")},
               token=None)
    assert r.status_code == 403 and "audience" in r.text, r.text


def test_configure_refuses_a_fixed_cn_for_many_accounts_and_writes_nothing(ob):
    """The fixed-CN route of the issue: a fixed role next to a wildcard binding."""
    env = ob.configure_env(PKI_ROLE="bootstrapper",
                           PKI_ROLE_ALLOWED_DOMAINS=f"bootstrapper.payments.{SUFFIX}",
                           AUTH_METHODS="kubernetes jwt", PKI_ROLE_AUTH_METHODS="kubernetes jwt",
                           K8S_BOUND_SA_NAMES="*", K8S_BOUND_SA_NAMESPACES="team-a,team-b")
    proc = subprocess.run(["bash", str(CONFIGURE)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("configure: error: ")
    assert "'bootstrapper.payments.workload.internal' is in the per-ServiceAccount name space" \
        in proc.stderr
    assert ob.api("GET", f"{ob.pki_mount}/roles/bootstrapper").status_code == 404
    # Outside the per-ServiceAccount space, still refused for a wildcard binding.
    env["PKI_ROLE_ALLOWED_DOMAINS"] = "shared.apps.internal"
    proc = subprocess.run(["bash", str(CONFIGURE)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "would give one fixed CN to every ServiceAccount" in proc.stderr


# ---- the per-account recipe --------------------------------------------------------------

def recipe_script() -> str:
    """The per-account loop of vault/README.md, as written (K8S_HOST comes from the env)."""
    readme = (ROOT / "vault" / "README.md").read_text()
    m = re.search(r"\*\*Per-account recipe\*\*.*?```sh\n(.*?)```", readme, re.S)
    assert m, "vault/README.md lost its per-account recipe"
    script = m.group(1).replace("K8S_HOST=… ", "").replace("./vault/configure.sh", str(CONFIGURE))
    assert "…" not in script, script
    return script


@pytest.fixture(scope="module")
def recipe(ob):
    env = ob.configure_env(AUTH_METHODS="kubernetes")
    for k in ("PKI_ROLE", "PKI_ROLE_ALLOWED_DOMAINS", "PKI_ROLE_AUTH_METHODS", "K8S_ROLE",
              "K8S_BOUND_SA_NAMES", "K8S_BOUND_SA_NAMESPACES", "PKI_TEMPLATED_ROLE"):
        env.pop(k, None)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe_script()], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return env


def test_the_per_account_recipe_separates_the_accounts(ob, anchor, policies, recipe,
                                                       tmp_path):
    fixed_cns = {t: f"app.{t}.apps.internal" for t in ("team-a", "team-b")}
    issuer_cn = anchor.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    fixed_policies = {t: readme_trust_policy(tmp_path, cn, issuer_cn) for t, cn in fixed_cns.items()}
    everyone = {**{("templated",) + a: p for a, p in policies.items()},
                **{("fixed", t): p for t, p in fixed_policies.items()}}
    # Each account has its own login role, policy and PKI roles.
    for t in ("team-a", "team-b"):
        role = ob.api("GET", f"auth/kubernetes/role/{t}").json()["data"]
        assert sorted(role["token_policies"]) == sorted([t, f"pki-fixed-{t}-fixed"])
        assert role["bound_service_account_names"] == ["app"]
        assert role["bound_service_account_namespaces"] == [t]
    # team-a cannot log in with team-b's role.
    r = login(ob, role="team-b")
    assert r.status_code == 403, r.text
    r = login(ob, role="team-a")
    assert r.status_code == 200, r.text
    token = r.json()["auth"]["client_token"]
    issued = []
    for role, cn, want in (("team-a", cn_of(*ME), 200), ("team-a-fixed", fixed_cns["team-a"], 200),
                           ("team-a", VICTIM, 400), ("team-a-fixed", fixed_cns["team-b"], 400),
                           ("team-a-fixed", VICTIM, 400),
                           ("team-a-fixed", f"{fixed_cns['team-b']}@{fixed_cns['team-a']}", 400),
                           ("team-b", VICTIM, 403), ("team-b-fixed", fixed_cns["team-b"], 403),
                           ("team-b", cn_of(*ME), 403)):
        r = ob.api("POST", f"{ob.pki_mount}/sign/{role}", {"csr": csr(cn)}, token=token)
        assert r.status_code == want, (role, cn, r.text)
        if r.status_code == 200:
            issued.append(x509.load_pem_x509_certificate(r.json()["data"]["certificate"].encode()))
    assert len(issued) == 2
    for leaf in issued:
        ok = [who for who, p in everyone.items() if roles_anywhere_accepts(leaf, anchor, p)]
        assert len(ok) == 1 and ok[0] in {("templated",) + ME, ("fixed", "team-a")}, ok

    # Run again for team-b reusing team-a's PKI role name: refused, team-a's role untouched.
    env = dict(recipe, K8S_ROLE="team-b", POLICY_NAME="team-b", PKI_TEMPLATED_ROLE="team-b",
               K8S_BOUND_SA_NAMES="app", K8S_BOUND_SA_NAMESPACES="team-b",
               PKI_ROLE="team-a-fixed", PKI_ROLE_ALLOWED_DOMAINS=fixed_cns["team-b"])
    proc = subprocess.run(["bash", str(CONFIGURE)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "already granted to auth/kubernetes/role/team-a" in proc.stderr
    role = ob.api("GET", f"{ob.pki_mount}/roles/team-a-fixed").json()["data"]
    assert role["allowed_domains"] == [fixed_cns["team-a"]]


# ---- the credential-process cache --------------------------------------------------------

@pytest.fixture
def cp(iamra_bin, ob, tmp_path):
    """credential-process with Vault kubernetes auth on the multi-tenant server, cached."""
    ra = FakeRolesAnywhere([ob.root_ca_pem], region=REGION).start()
    token = tmp_path / "sa" / "token"
    token.parent.mkdir()
    cache = tmp_path / "cache"

    def run(*extra, env=None, cache_dir=None, token_file=None):
        args = [str(iamra_bin), "credential-process", "--trust-anchor-arn", TA_ARN,
                "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN, "--endpoint", ra.url,
                "--vault-addr", ob.addr, "--vault-role", ob.k8s_role,
                "--service-account-token-file", str(token_file or token),
                "--pki-role", ob.pki_templated_role,
                "--cache-dir", str(cache_dir or cache), "--timeout", "30s", *extra]
        return subprocess.run(args, env=clean_env(env, home=tmp_path / "home"),
                              capture_output=True, text=True, timeout=90)

    (tmp_path / "home").mkdir()
    run.ra, run.token, run.cache = ra, token, cache
    try:
        yield run
    finally:
        ra.stop()


def sent_cn(ra) -> str:
    leaf = x509.load_der_x509_certificate(base64.b64decode(ra.requests[-1].headers["x-amz-x509"]))
    return leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_a_different_token_behind_the_same_path_is_a_different_cache_entry(cp, ob):
    cp.token.write_text(ob.mint_sa_token("team-b", "app"))
    first = cp()
    assert first.returncode == 0, first.stderr
    assert cp.ra.count == 1 and sent_cn(cp.ra) == VICTIM
    # The same path now holds team-a's token: not team-b's cached credentials.
    cp.token.write_text(ob.mint_sa_token(*ME))
    second = cp()
    assert second.returncode == 0, second.stderr
    assert cp.ra.count == 2 and sent_cn(cp.ra) == cn_of(*ME)
    assert json.loads(second.stdout)["AccessKeyId"] != json.loads(first.stdout)["AccessKeyId"]
    # The same token again: served from the cache (the cache still works).
    third = cp()
    assert third.returncode == 0 and cp.ra.count == 2 and third.stdout == second.stdout
    # A token read through a pipe: read once, for the key and the login alike (a new cache
    # folder, so the login happens).
    fifo = cp.token.parent / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f'cat "{cp.token}" > "{fifo}"'])
    piped = cp(token_file=fifo, cache_dir=cp.cache.parent / "cache2")
    writer.wait(timeout=30)
    assert piped.returncode == 0, piped.stderr
    assert cp.ra.count == 3 and sent_cn(cp.ra) == cn_of(*ME)


def plant(entry: pathlib.Path) -> str:
    """Rewrites a cached entry with credentials of the planter's choosing."""
    data = json.loads(entry.read_text())
    data["AccessKeyId"] = "ASIAPLANTEDPLANTED00"
    entry.write_text(json.dumps(data))
    return data["AccessKeyId"]


@pytest.mark.parametrize("how", ["folder of another uid", "folder writable by others",
                                 "entry of another uid", "entry writable by others"])
def test_a_planted_cache_entry_is_never_read(cp, ob, how):
    cp.token.write_text(ob.mint_sa_token(*ME))
    assert cp().returncode == 0 and cp.ra.count == 1
    [entry] = cp.cache.glob("*.json")
    planted = plant(entry)
    entry.chmod(0o600)
    if how == "folder of another uid":
        os.chown(cp.cache, 12345, 12345)
        cp.cache.chmod(0o755)
    elif how == "folder writable by others":
        cp.cache.chmod(0o777)
    elif how == "entry of another uid":
        os.chown(entry, 12345, 12345)
    else:
        entry.chmod(0o666)
    run = cp()
    assert run.returncode == 0, run.stderr
    assert cp.ra.count == 2, "the planted entry was used instead of a new session"
    assert planted not in run.stdout
    warnings = run.stderr.splitlines()
    assert len(warnings) == 1, run.stderr
    assert warnings[0].startswith("iamra-bootstrap: warning: credential cache "), warnings
    assert ("belongs to uid 12345" in warnings[0]) == ("another uid" in how), warnings
    assert ("group or others may write it" in warnings[0]) == ("writable" in how), warnings
    if how.startswith("entry"):
        # Replaced by a private entry of ours, which the next run uses.
        st = entry.stat()
        assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o600
        again = cp()
        assert again.returncode == 0 and cp.ra.count == 2 and again.stdout == run.stdout


# ---- the webhook's namespace policy ------------------------------------------------------

def chart_policy(tmp: pathlib.Path) -> pathlib.Path:
    """The namespace policy file as the chart renders it from its CI values."""
    helm = next(iter(sorted((ROOT / ".work" / "tools").glob("helm-*/helm"))), None) \
        or shutil.which("helm")
    if helm is None:
        pytest.skip("no helm (scripts/setup.sh installs it under .work/tools)")
    out = subprocess.run([str(helm), "template", "x", str(ROOT / "charts" / "iamra-bootstrap"),
                          "-f", str(ROOT / "charts/iamra-bootstrap/ci/cluster-issuer-values.yaml"),
                          "--namespace", "iamra-system", "--show-only",
                          "templates/namespace-policy.yaml"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = re.search(r'namespace-policy\.json: (".*")$', out.stdout, re.M)
    assert m, out.stdout
    path = tmp / "namespace-policy.json"
    path.write_text(json.loads(m.group(1)))
    return path


def test_the_webhook_admits_only_what_the_namespace_policy_allows(iamra_bin, tmp_path):
    from test_webhook import Webhook, admit, pod

    policy = chart_policy(tmp_path)
    assert json.loads(policy.read_text())["namespaces"]["team-a"]["roleArns"] == \
        ["arn:aws:iam::123456789012:role/team-a-*"]
    w = Webhook(iamra_bin, tmp_path, extra=["--namespace-policy", str(policy)]).start()
    try:
        inside = admit(w, pod({"iamra-bootstrap/role-arn": ROLE_TEAM_A}), namespace="team-a")
        assert inside.allowed and inside.ops, inside.response
        for ns, role, annotations, words in (
            ("team-a", ROLE_TEAM_B, {}, ['namespace "team-a"', f'role "{ROLE_TEAM_B}"']),
            ("team-b", ROLE_TEAM_B, {}, ['namespace "team-b"', ROLE_TEAM_B, "allowed: none"]),
            ("team-a", ROLE_TEAM_A, {"iamra-bootstrap/pki-role": "team-b"},
             ["iamra-bootstrap/pki-role", 'namespace "team-a"', "allowOverrides"]),
            ("team-a", ROLE_TEAM_A, {"iamra-bootstrap/vault-role": "team-b"},
             ["iamra-bootstrap/vault-role"]),
        ):
            res = admit(w, pod({"iamra-bootstrap/role-arn": role, **annotations}), namespace=ns)
            assert not res.allowed and res.ops is None, (ns, role, annotations)
            assert all(word in res.message for word in words), res.message
        # kube2iam's role annotation is held to the same policy.
        res = admit(w, pod({"iam.amazonaws.com/role": ROLE_TEAM_B}), namespace="team-a")
        assert not res.allowed and ROLE_TEAM_B in res.message
        # A pod that asks for nothing is not ours: allowed unchanged.
        assert admit(w, pod({}), namespace="team-b").allowed
        # The policy is re-read when it changes (the kubelet updates the ConfigMap volume).
        policy.write_text(json.dumps({"namespaces": {"team-b": {"roleArns": [ROLE_TEAM_B]}}}))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if admit(w, pod({"iamra-bootstrap/role-arn": ROLE_TEAM_B}), namespace="team-b").allowed:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the new policy was not loaded")
        assert not admit(w, pod({"iamra-bootstrap/role-arn": ROLE_TEAM_A}), namespace="team-a").allowed
    finally:
        w.stop()


def test_a_yaml_namespace_policy_is_the_same_policy(iamra_bin, tmp_path):
    """The operator may write the policy in YAML (the chart renders JSON)."""
    from test_webhook import Webhook, admit, pod

    policy = tmp_path / "policy.yaml"
    policy.write_text("# team-a only\nnamespaces:\n  team-a:\n    roleArns:\n"
                      "      - arn:aws:iam::123456789012:role/team-a-*\n")
    w = Webhook(iamra_bin, tmp_path, extra=["--namespace-policy", str(policy)]).start()
    try:
        assert admit(w, pod({"iamra-bootstrap/role-arn": ROLE_TEAM_A}), namespace="team-a").allowed
        res = admit(w, pod({"iamra-bootstrap/role-arn": ROLE_TEAM_B}), namespace="team-a")
        assert not res.allowed and ROLE_TEAM_B in res.message, res.message
        res = admit(w, pod({"iamra-bootstrap/role-arn": ROLE_TEAM_B}), namespace="team-b")
        assert not res.allowed and 'namespace "team-b"' in res.message, res.message
    finally:
        w.stop()


def test_an_invalid_namespace_policy_stops_the_webhook_with_one_line(iamra_bin, tmp_path):
    bad = tmp_path / "policy.json"
    bad.write_text('{"namespaces": {"team-a": {"roleArn": ["*"]}}}')
    from test_webhook import Webhook
    w = Webhook(iamra_bin, tmp_path, extra=["--namespace-policy", str(bad)])
    proc = subprocess.run(w.args, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid namespace policy" in lines[0] and "roleArn" in lines[0], \
        proc.stderr
