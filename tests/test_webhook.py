"""`iamra-bootstrap webhook` end to end, as the API server drives it: real-shaped
``admission.k8s.io/v1`` AdmissionReviews POSTed over TLS to ``/mutate?timeout=10s``.

Each returned JSONPatch is decoded and applied with Python's ``jsonpatch`` (an independent
RFC 6902 implementation), and the resulting pod is validated strictly against the Kubernetes
1.33 schema with kubernetes-validate. The injected container's own ``args`` and the app
container's ``env`` are then executed for real: ``init`` (and ``serve`` as the sidecar) against
the OpenBao dev server and the verifying fake Roles Anywhere, with the container's mount paths
mapped to temporary folders (and the sidecar's ports to free loopback ports); botocore reads
the result the way the app would.
"""
from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import json
import os
import pathlib
import re
import subprocess
import time
import uuid

import botocore.session
import jsonpatch
import kubernetes_validate
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import clean_env
from fakes.rolesanywhere import FakeRolesAnywhere
from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN
from support.openbao import free_port, terminate

KUBE_VERSION = "1.33.0"
IMAGE = "registry.example/iamra-bootstrap:0.1.0"
ERROR_PREFIX = "iamra-bootstrap: error: "
OTHER_ROLE = "arn:aws:iam::123456789012:role/Kube2iamRole"


# ---- TLS material -------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_serving_pair(directory: pathlib.Path, ca_cn: str) -> pathlib.Path:
    """A throwaway CA and a serving certificate for 127.0.0.1 (what the chart or cert-manager
    make for the Service name); writes tls.crt, tls.key and ca.crt; returns the CA path."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(ca_cn)).issuer_name(_name(ca_cn))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(_name("iamra-bootstrap.iamra-system.svc"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("iamra-bootstrap.iamra-system.svc"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    # cert-manager style: write the new pair next to the files, then rename over them.
    for name, data in (("tls.key", key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption())),
                       ("tls.crt", leaf.public_bytes(pem)),
                       ("ca.crt", ca.public_bytes(pem))):
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.rename(directory / name)
    return directory / "ca.crt"


# ---- the webhook process ------------------------------------------------------------------

class Webhook:
    """One `iamra-bootstrap webhook` on a free loopback port."""

    def __init__(self, iamra_bin, workdir: pathlib.Path, vault_addr: str = "https://vault.example:8200",
                 extra: list[str] | None = None, audience: str | None = None):
        self.dir = workdir
        self.tls_dir = workdir / "tls"
        self.ca = make_serving_pair(self.tls_dir, "webhook test CA 1")
        self.port = free_port()
        self.args = [str(iamra_bin), "webhook", "--listen", f"127.0.0.1:{self.port}",
                     "--tls-cert", str(self.tls_dir / "tls.crt"),
                     "--tls-key", str(self.tls_dir / "tls.key"),
                     "--image", IMAGE, "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN,
                     "--vault-addr", vault_addr, "--pki-role", "workload",
                     *(["--token-audience", audience] if audience else []), *(extra or [])]
        self.log = workdir / "webhook.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Webhook":
        self.proc = subprocess.Popen(self.args, env=clean_env(), stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("wb"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"webhook exited: {self.log.read_text()}"
            try:
                if self.get("/healthz").status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"webhook not up: {self.log.read_text()}")

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.base + path, verify=str(self.ca), timeout=10, **kw)

    def post(self, body: bytes, path: str = "/mutate?timeout=10s", **kw) -> requests.Response:
        return requests.post(self.base + path, data=body, verify=str(self.ca), timeout=30,
                             headers={"Content-Type": "application/json"}, **kw)

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in self.get("/metrics").text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self) -> None:
        if self.proc:
            terminate(self.proc)


@pytest.fixture(scope="module")
def webhook(iamra_bin, tmp_path_factory):
    w = Webhook(iamra_bin, tmp_path_factory.mktemp("webhook")).start()
    try:
        yield w
    finally:
        w.stop()


# ---- reviews ------------------------------------------------------------------------------

def review(pod: dict, namespace: str = "shop", uid: str | None = None) -> dict:
    """An AdmissionReview as the API server sends it for a pod CREATE."""
    return {
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"].get("name", ""), "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": "7a0d7a5c-2b59-4bd4-a7b4-2f3a7c0b1a2e",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                    "system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


class Result:
    def __init__(self, sent: dict, answer: dict):
        self.sent, self.answer = sent, answer
        self.response = answer["response"]
        self.allowed = self.response["allowed"]
        self.warnings = self.response.get("warnings") or []
        self.ops = (json.loads(base64.b64decode(self.response["patch"]))
                    if "patch" in self.response else None)
        obj = sent["request"]["object"]
        # the independent RFC 6902 implementation
        self.pod = jsonpatch.JsonPatch(self.ops).apply(obj) if self.ops else copy.deepcopy(obj)

    @property
    def message(self) -> str:
        return self.response["status"]["message"]

    def container(self, name: str, init: bool = False) -> dict:
        key = "initContainers" if init else "containers"
        return next(c for c in self.pod["spec"].get(key, []) if c["name"] == name)

    def env(self, name: str) -> dict[str, str]:
        return {e["name"]: e.get("value") for e in self.container(name).get("env") or []}


def admit(w: Webhook, pod: dict, namespace: str = "shop") -> Result:
    sent = review(pod, namespace)
    r = w.post(json.dumps(sent).encode())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == sent["request"]["uid"]
    if "patch" in answer["response"]:
        assert answer["response"]["patchType"] == "JSONPatch"
    res = Result(sent, answer)
    if res.allowed:
        validate_pod(res.pod)
    return res


def validate_pod(pod: dict) -> None:
    full = {"apiVersion": "v1", "kind": "Pod", **copy.deepcopy(pod)}
    kubernetes_validate.validate(full, KUBE_VERSION, strict=True)


def pod(annotations: dict | None = None, containers: list | None = None, **spec) -> dict:
    meta = {"name": "payments-api", "namespace": "shop", "labels": {"app": "payments-api"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"serviceAccountName": "payments-api",
                     "containers": containers or [{"name": "app", "image": "app:1"}], **spec}}


def deployment_pod() -> dict:
    """A pod as the ReplicaSet controller creates it: generateName only, with the defaults the
    API server filled in, an existing init container, volumes and env."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": "web-5f6d8b7c9d-", "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "5f6d8b7c9d"},
            "annotations": {"iamra-bootstrap/role-arn": ROLE_ARN},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "web-5f6d8b7c9d", "uid": str(uuid.uuid4()),
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "serviceAccountName": "web", "serviceAccount": "web",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
            "initContainers": [{"name": "migrate", "image": "web:1", "args": ["migrate"],
                                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "containers": [{
                "name": "web", "image": "web:1", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "AWS_REGION", "value": "eu-central-1"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                         "fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"},
                                 {"name": "kube-api-access-x1y2z", "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "volumes": [{"name": "cache", "emptyDir": {}},
                        {"name": "kube-api-access-x1y2z", "projected": {"defaultMode": 420, "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
        },
    }


def args_of(c: dict) -> dict[str, str]:
    a = c["args"]
    return {a[i]: a[i + 1] for i in range(1, len(a) - 1) if a[i].startswith("--")
            and not a[i + 1].startswith("--")}


def assert_hardened(c: dict, uid: int) -> None:
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == uid
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    assert "command" not in c and "envFrom" not in c


# ---- admission ----------------------------------------------------------------------------

def test_bare_pod_gets_an_init_container(webhook):
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN}))
    assert res.allowed and res.ops and res.warnings == []
    init = res.pod["spec"]["initContainers"][0]
    assert init["name"] == "iamra-bootstrap" and init["image"] == IMAGE
    assert init["args"][0] == "init"
    a = args_of(init)
    assert a["--trust-anchor-arn"] == TA_ARN and a["--profile-arn"] == PROFILE_ARN
    assert a["--role-arn"] == ROLE_ARN
    assert a["--vault-addr"] == "https://vault.example:8200"
    assert a["--vault-role"] == "payments-api"          # the pod's ServiceAccount
    assert a["--pki-role"] == "workload"
    assert "restartPolicy" not in init
    assert_hardened(init, 65534)
    vols = {v["name"]: v for v in res.pod["spec"]["volumes"]}
    cred_mount = next(m for m in init["volumeMounts"] if a["--credentials-file"].startswith(m["mountPath"] + "/"))
    assert vols[cred_mount["name"]]["emptyDir"]["medium"] == "Memory"
    tok_mount = next(m for m in init["volumeMounts"]
                     if a["--service-account-token-file"].startswith(m["mountPath"] + "/"))
    sat = vols[tok_mount["name"]]["projected"]["sources"][0]["serviceAccountToken"]
    assert sat["audience"] == "vault" and sat["expirationSeconds"] <= 3600
    app = res.container("app")
    assert res.env("app") == {"AWS_SHARED_CREDENTIALS_FILE": a["--credentials-file"],
                              "AWS_REGION": REGION}
    assert {"name": cred_mount["name"], "mountPath": cred_mount["mountPath"], "readOnly": True} \
        in app["volumeMounts"]


def test_deployment_template_pod(webhook):
    sent = deployment_pod()
    res = admit(webhook, sent)
    assert res.allowed
    inits = res.pod["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["iamra-bootstrap", "migrate"]
    assert inits[1] == sent["spec"]["initContainers"][0]
    assert_hardened(inits[0], 1000)                      # the app's uid, so it can read the file
    assert args_of(inits[0])["--vault-role"] == "web"
    names = [v["name"] for v in res.pod["spec"]["volumes"]]
    assert names[:2] == ["cache", "kube-api-access-x1y2z"] and len(names) == 4
    env = res.env("web")
    assert env["AWS_REGION"] == "eu-central-1"           # kept
    assert "AWS_SHARED_CREDENTIALS_FILE" in env and "POD_NAME" in env
    assert len(res.warnings) == 1 and "AWS_REGION" in res.warnings[0], res.warnings
    assert res.pod["metadata"] == sent["metadata"]       # generateName untouched, no name made up


def test_multiple_containers_all_get_the_environment(webhook):
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN}, containers=[
        {"name": "app", "image": "a"}, {"name": "worker", "image": "w", "env": []},
        {"name": "proxy", "image": "p", "securityContext": {"runAsUser": 1234}}]))
    for name in ("app", "worker", "proxy"):
        assert "AWS_SHARED_CREDENTIALS_FILE" in res.env(name), name
    # the apps do not agree on a uid: the image's
    assert res.pod["spec"]["initContainers"][0]["securityContext"]["runAsUser"] == 65534


def test_containers_annotation_selects(webhook):
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN,
                              "iamra-bootstrap/containers": "worker"},
                             containers=[{"name": "app", "image": "a"},
                                         {"name": "worker", "image": "w",
                                          "securityContext": {"runAsUser": 4242}}]))
    assert "env" not in res.container("app") and "volumeMounts" not in res.container("app")
    assert "AWS_SHARED_CREDENTIALS_FILE" in res.env("worker")
    assert res.pod["spec"]["initContainers"][0]["securityContext"]["runAsUser"] == 4242
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN,
                              "iamra-bootstrap/containers": "app,missing"}))
    assert not res.allowed
    assert "iamra-bootstrap/containers" in res.message and "missing" in res.message


def test_kube2iam_annotation(webhook):
    res = admit(webhook, pod({"iam.amazonaws.com/role": OTHER_ROLE}))
    assert res.allowed and res.ops
    assert args_of(res.pod["spec"]["initContainers"][0])["--role-arn"] == OTHER_ROLE
    # a bare kube2iam role name cannot be used: unchanged, with a warning
    res = admit(webhook, pod({"iam.amazonaws.com/role": "Kube2iamRole"}))
    assert res.allowed and res.ops is None
    assert any("iam.amazonaws.com/role" in w for w in res.warnings)


def test_sidecar_mode(webhook):
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/mode": "sidecar"}))
    side = res.pod["spec"]["initContainers"][0]
    assert side["restartPolicy"] == "Always" and side["args"][0] == "serve"
    a = args_of(side)
    assert a["--listen"].startswith("127.0.0.1:")
    health = a["--health-listen"]
    assert not health.startswith("127.") and "--credentials-file" not in a
    port = next(p for p in side["ports"] if p["name"] == side["startupProbe"]["httpGet"]["port"])
    assert port["containerPort"] == int(health.rsplit(":", 1)[1])
    assert side["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert_hardened(side, 65534)
    env = res.env("app")
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == f"http://{a['--listen']}/v1/credentials"
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == a["--auth-token-file"]
    assert "AWS_SHARED_CREDENTIALS_FILE" not in env


def test_already_injected_gets_no_second_copy(webhook):
    for p in (deployment_pod(), pod({"iamra-bootstrap/role-arn": ROLE_ARN,
                                     "iamra-bootstrap/mode": "sidecar"})):
        once = admit(webhook, p)
        twice = admit(webhook, once.pod)
        assert twice.allowed and twice.ops is None, twice.ops
        assert twice.pod == once.pod


@pytest.mark.parametrize("annotations, named", [
    ({"iamra-bootstrap/role-arn": "arn:aws:iam::12345:role/short-account"}, "iamra-bootstrap/role-arn"),
    ({"iamra-bootstrap/role-arn": "payments"}, "iamra-bootstrap/role-arn"),
    ({"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/mode": "daemon"}, "iamra-bootstrap/mode"),
    ({"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/session-duration": "13h"},
     "iamra-bootstrap/session-duration"),
    ({"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/session-duration": "60"},
     "iamra-bootstrap/session-duration"),
    ({"iamra-bootstrap/role-arn": ROLE_ARN,
      "iamra-bootstrap/profile-arn": "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/x"},
     "iamra-bootstrap/profile-arn"),
    ({"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/trust-anchor-arn": "arn:aws:s3:::bucket"},
     "iamra-bootstrap/trust-anchor-arn"),
    ({"iamra-bootstrap/mode": "sidecar"}, "iamra-bootstrap/role-arn"),
    ({"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/rolearn": "x"}, "iamra-bootstrap/rolearn"),
])
def test_invalid_annotation_is_denied_naming_it(webhook, annotations, named):
    res = admit(webhook, pod(annotations))
    assert not res.allowed and res.ops is None
    assert named in res.message, res.message


def test_a_megabyte_annotation_is_echoed_short(iamra_bin, tmp_path):
    """Denials and their log lines quote at most a short prefix of what the pod sent."""
    w = Webhook(iamra_bin, tmp_path).start()
    try:
        mb = "x" * (1 << 20)
        for annotations in ({"iamra-bootstrap/role-arn": mb},
                            {"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/mode": mb},
                            {"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/containers": mb},
                            {"iamra-bootstrap/role-arn": ROLE_ARN, f"iamra-bootstrap/{mb}": "1"}):
            p = pod(annotations)
            p["metadata"]["name"] = "n" * (1 << 20)
            res = admit(w, p)
            assert not res.allowed
            assert len(res.message) < 600 and re.search(r"… \(10485\d\d characters\)", res.message), \
                res.message[:300]
        res = admit(w, pod({"iam.amazonaws.com/role": mb}))
        assert res.allowed and len(res.warnings) == 1 and len(res.warnings[0]) < 300, res.warnings
        w.stop()
        log = w.log.read_text()
        denied = [ln for ln in log.splitlines() if "denied" in ln]
        assert len(denied) == 4, log[:2000]
        assert all(len(ln) < 1200 for ln in log.splitlines()), max(len(ln) for ln in log.splitlines())
        assert len(log) < 20_000
    finally:
        w.stop()


def test_service_account_name_is_escaped_for_the_kubelet(webhook):
    """The kubelet expands $(VAR) in args: a ServiceAccount named $(HOME) must reach the
    container as the Vault role $(HOME), not as the value of HOME."""
    for sa in ("$(HOME)", "$$(HOME)", "a$b$", "$(KUBERNETES_SERVICE_HOST)"):
        p = pod({"iamra-bootstrap/role-arn": ROLE_ARN})
        p["spec"]["serviceAccountName"] = sa
        res = admit(webhook, p)
        init = res.pod["spec"]["initContainers"][0]
        raw = args_of(init)["--vault-role"]
        assert raw == sa.replace("$", "$$")
        assert kubelet_expand(raw, PodRun.variables(init)) == sa
        for c in res.pod["spec"]["containers"]:
            variables = PodRun.variables(c)
            assert all(variables[e["name"]] == e["value"] for e in c["env"]), c["env"]
    assert kubelet_expand("$(HOME)", KUBELET_VARIABLES) != "$(HOME)"   # the test can fail


def test_no_annotation_no_patch(webhook):
    for annotations in (None, {}, {"prometheus.io/scrape": "true"}):
        res = admit(webhook, pod(annotations))
        assert res.allowed and res.ops is None and "patchType" not in res.response


def test_not_a_pod_create_is_allowed_unchanged(webhook):
    sent = review(pod({"iamra-bootstrap/role-arn": ROLE_ARN}))
    sent["request"]["operation"] = "UPDATE"
    r = webhook.post(json.dumps(sent).encode())
    assert r.status_code == 200 and r.json()["response"]["allowed"] is True
    assert "patch" not in r.json()["response"]


def assert_healthy(w: Webhook) -> None:
    assert w.get("/healthz").status_code == 200
    assert admit(w, pod({"iamra-bootstrap/role-arn": ROLE_ARN})).ops


def test_huge_body_is_refused_and_the_server_stays_healthy(webhook):
    before = webhook.metrics()["iamra_webhook_bad_requests_total"]
    big = review(pod({"iamra-bootstrap/role-arn": ROLE_ARN, "filler": "x" * (10 * 1024 * 1024)}))
    body = json.dumps(big).encode()
    assert len(body) > 10_000_000
    try:
        r = webhook.post(body)
        assert r.status_code in (400, 413), r.status_code
    except requests.ConnectionError:
        pytest.fail("the webhook dropped the connection instead of answering 413")
    # chunked (no Content-Length): the limit applies while reading
    r = webhook.post(iter([body[i:i + 65536] for i in range(0, len(body), 65536)]))
    assert r.status_code in (400, 413), r.status_code
    assert webhook.metrics()["iamra_webhook_bad_requests_total"] >= before + 2
    assert_healthy(webhook)


@pytest.mark.parametrize("body", [
    b"garbage", b"", b"{}", b"[1,2,3]",
    json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                "request": review(pod())["request"]}).encode(),
    json.dumps(review({"metadata": {}, "spec": {"containers": "not a list"}})).encode(),
])
def test_garbage_is_400(webhook, body):
    r = webhook.post(body)
    assert r.status_code == 400, (r.status_code, r.text)
    assert_healthy(webhook)


def test_health_and_metrics(webhook):
    assert webhook.get("/healthz").text == "ok\n"
    assert webhook.get("/readyz").status_code == 200
    before = webhook.metrics()
    admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN}))
    admit(webhook, pod())
    admit(webhook, pod({"iamra-bootstrap/role-arn": "nope"}))
    after = webhook.metrics()
    for result in ("patched", "unchanged", "denied"):
        key = f'iamra_webhook_admissions_total{{result="{result}"}}'
        assert after[key] == before[key] + 1, key
    assert 0 < after["iamra_webhook_certificate_expiry_seconds"] <= 86400
    assert webhook.get("/nope").status_code == 404
    assert webhook.get("/mutate").status_code == 405


def test_certificate_is_reloaded_when_its_files_change(iamra_bin, tmp_path):
    w = Webhook(iamra_bin, tmp_path).start()
    try:
        old_ca = tmp_path / "old-ca.pem"
        old_ca.write_bytes(w.ca.read_bytes())
        make_serving_pair(w.tls_dir, "webhook test CA 2")     # a rotation, new CA
        deadline = time.monotonic() + 20
        while True:
            try:
                assert w.get("/healthz").status_code == 200     # verified with the new CA
                break
            except requests.exceptions.SSLError:
                assert time.monotonic() < deadline, "the new certificate was not picked up"
                time.sleep(0.5)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(w.base + "/healthz", verify=str(old_ca), timeout=5)
        assert w.metrics()["iamra_webhook_certificate_reloads_total"] == 1
        # a broken rotation keeps the current pair
        (w.tls_dir / "tls.key").write_text("not a key")
        time.sleep(6)
        assert w.get("/healthz").status_code == 200
        assert w.metrics()["iamra_webhook_certificate_reload_failures_total"] >= 1
    finally:
        w.stop()


@pytest.mark.parametrize("drop, needle", [
    ("--image", "--image"), ("--tls-cert", "--tls-cert"), ("--trust-anchor-arn", "--trust-anchor-arn"),
    ("--vault-addr", "--vault-addr"), ("--pki-role", "--pki-role"),
])
def test_missing_settings_fail_with_one_line(iamra_bin, tmp_path, drop, needle):
    w = Webhook(iamra_bin, tmp_path)
    args = list(w.args)
    i = args.index(drop)
    del args[i:i + 2]
    p = subprocess.run(args, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(lines) == 1 and needle in lines[0], p.stderr


def test_settings_from_the_environment(iamra_bin, tmp_path):
    w = Webhook(iamra_bin, tmp_path)
    env = clean_env({
        "IAMRA_LISTEN": f"127.0.0.1:{w.port}", "IAMRA_TLS_CERT": str(w.tls_dir / "tls.crt"),
        "IAMRA_TLS_KEY": str(w.tls_dir / "tls.key"), "IAMRA_IMAGE": "env/image:1",
        "IAMRA_TRUST_ANCHOR_ARN": TA_ARN, "IAMRA_PROFILE_ARN": PROFILE_ARN,
        "IAMRA_VAULT_ADDR": "http://vault.env:8200", "IAMRA_PKI_ROLE": "env-pki",
        "IAMRA_VAULT_ROLE": "env-role", "IAMRA_DEFAULT_MODE": "sidecar",
        "IAMRA_TOKEN_AUDIENCE": "env-aud"})
    w.proc = subprocess.Popen([str(iamra_bin), "webhook"], env=env, stdout=subprocess.DEVNULL,
                              stderr=w.log.open("wb"))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                w.get("/healthz")
                break
            except requests.ConnectionError:
                assert w.proc.poll() is None and time.monotonic() < deadline, w.log.read_text()
                time.sleep(0.05)
        res = admit(w, pod({"iamra-bootstrap/role-arn": ROLE_ARN}))
        side = res.pod["spec"]["initContainers"][0]
        assert side["image"] == "env/image:1" and side["args"][0] == "serve"
        a = args_of(side)
        assert (a["--vault-addr"], a["--pki-role"], a["--vault-role"]) == \
            ("http://vault.env:8200", "env-pki", "env-role")
        vol = next(v for v in res.pod["spec"]["volumes"] if "projected" in v)
        assert vol["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "env-aud"
    finally:
        w.stop()


# ---- the injected command line, executed for real ----------------------------------------

def kubelet_expand(value: str, variables: dict[str, str]) -> str:
    """The kubelet's expansion of a container's ``args`` and ``env`` values, as the Kubernetes
    docs define it ("Define Dependent Environment Variables"): ``$(VAR)`` becomes the value of a
    defined variable (an undefined one is left as it is), ``$$`` becomes ``$``; any other ``$``
    (an unclosed ``$(`` too) stays."""
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c != "$" or i + 1 == len(value):
            out.append(c)
            i += 1
        elif value[i + 1] == "$":
            out.append("$")
            i += 2
        elif value[i + 1] == "(" and ")" in value[i + 2:]:
            end = value.index(")", i + 2)
            name = value[i + 2:end]
            out.append(variables.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append("$")
            i += 1
    return "".join(out)


# Variables a container can see besides its own env: the kubelet's service links, and HOME as a
# pod could define it.
KUBELET_VARIABLES = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
                     "HOME": "/root"}


def test_kubelet_expansion_model():
    """The model expands what the kubelet expands (else the escaping tests could not fail)."""
    v = {"HOME": "/root"}
    assert kubelet_expand("$(HOME)", v) == "/root"
    assert kubelet_expand("a$$(HOME)b", v) == "a$(HOME)b"
    assert kubelet_expand("$(NOPE)$", v) == "$(NOPE)$"
    assert kubelet_expand("$(HOME", v) == "$(HOME"
    assert kubelet_expand("$$$(HOME)$x", v) == "$/root$x"


class PodRun:
    """Runs a container of a mutated pod as the kubelet would: ``args`` and ``env`` expanded
    (:func:`kubelet_expand`), each volume mount mapped to a folder under ``root`` (one folder per
    volume, shared by the containers mounting it)."""

    def __init__(self, root: pathlib.Path, pod: dict):
        self.root, self.pod = root, pod

    @staticmethod
    def variables(c: dict) -> dict[str, str]:
        out = dict(KUBELET_VARIABLES)
        for e in c.get("env") or []:          # in order: each may refer to the ones before
            out[e["name"]] = kubelet_expand(e["value"], out)
        return out

    def host_path(self, c: dict, path: str) -> str:
        for m in c.get("volumeMounts") or []:
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                d = self.root / m["name"]
                d.mkdir(parents=True, exist_ok=True)
                return str(d) + path[len(mp):]
        return path

    def args(self, c: dict, ports: dict[str, str] | None = None) -> list[str]:
        out = []
        for a in c["args"]:
            a = kubelet_expand(a, self.variables(c))
            a = self.host_path(c, a) if a.startswith("/") else a
            out.append((ports or {}).get(a, a))
        return out

    def env(self, c: dict, ports: dict[str, str] | None = None) -> dict[str, str]:
        out = {}
        variables = self.variables(c)
        for e in c.get("env") or []:
            v = variables[e["name"]]
            v = self.host_path(c, v) if v.startswith("/") else v
            for old, new in (ports or {}).items():
                v = v.replace(old, new)
            out[e["name"]] = v
        return out


@pytest.fixture
def exec_setup(iamra_bin, openbao, tmp_path):
    """A webhook pointing at the OpenBao dev server (the audience its kubernetes role wants),
    the verifying fake Roles Anywhere trusting OpenBao's PKI root, and a writer for the
    projected ServiceAccount token the kubelet would mount."""
    w = Webhook(iamra_bin, tmp_path / "wh", vault_addr=openbao.addr, audience=openbao.audience).start()
    ra = FakeRolesAnywhere([openbao.root_ca_pem], region=REGION).start()
    try:
        yield w, ra
    finally:
        ra.stop()
        w.stop()


def kubelet_token(openbao, run: PodRun, res: Result, c: dict) -> None:
    """Writes the projected token as the kubelet would: for the pod's ServiceAccount, with the
    audience and path of the projected volume."""
    vols = {v["name"]: v for v in res.pod["spec"]["volumes"]}
    for m in c["volumeMounts"]:
        proj = vols[m["name"]].get("projected")
        if proj:
            sat = proj["sources"][0]["serviceAccountToken"]
            path = run.host_path(c, f"{m['mountPath']}/{sat['path']}")
            openbao.write_sa_token(path, ns=res.sent["request"]["namespace"],
                                   name=res.pod["spec"]["serviceAccountName"], aud=sat["audience"])


def sa_pod(mode: str) -> dict:
    p = pod({"iamra-bootstrap/role-arn": ROLE_ARN, "iamra-bootstrap/mode": mode,
             "iamra-bootstrap/session-duration": "1h"},
            containers=[{"name": "app", "image": "aws-cli", "env": [{"name": "HOME", "value": "/tmp"}]}])
    p["spec"]["serviceAccountName"] = "bootstrapper"    # bound to OpenBao's kubernetes role
    return p


def test_injected_init_container_runs_for_real(exec_setup, openbao, tmp_path, iamra_bin):
    w, ra = exec_setup
    res = admit(w, sa_pod("init"), namespace="payments")
    init = res.pod["spec"]["initContainers"][0]
    run = PodRun(tmp_path / "volumes", res.pod)
    kubelet_token(openbao, run, res, init)
    # The one thing outside the pod spec: the real Roles Anywhere is the fake here.
    env = clean_env({**run.env(init), "IAMRA_ENDPOINT": ra.url}, home=tmp_path / "home")
    # The image's ENTRYPOINT is the binary; the container gives only args.
    p = subprocess.run([str(iamra_bin), *run.args(init),
                        "--termination-log", str(tmp_path / "termination-log")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    issued = ra.issued[-1]
    # the app container, as the SDK sees it
    app_env = run.env(res.container("app"))
    s = botocore.session.Session()
    s.set_config_variable("credentials_file", app_env["AWS_SHARED_CREDENTIALS_FILE"])
    s.set_config_variable("config_file", str(tmp_path / "no-config"))
    creds = s.get_credentials().get_frozen_credentials()
    assert creds.access_key == issued["accessKeyId"] and creds.token == issued["sessionToken"]
    assert app_env["AWS_REGION"] == REGION
    assert ra.requests[-1].json["durationSeconds"] == 3600


def test_injected_init_logs_in_as_a_dollar_service_account_verbatim(exec_setup, openbao, tmp_path,
                                                                   iamra_bin):
    """The injected init, expanded as the kubelet would, logs in to OpenBao with the Vault role
    named as its ServiceAccount, $(HOME), not as /root. (OpenBao's role names cannot hold a $,
    so the login is refused; the refusal names the role it was asked for.)"""
    w, ra = exec_setup
    p = sa_pod("init")
    p["spec"]["serviceAccountName"] = "$(HOME)"
    res = admit(w, p, namespace="payments")
    init = res.pod["spec"]["initContainers"][0]
    run = PodRun(tmp_path / "volumes", res.pod)
    kubelet_token(openbao, run, res, init)
    args = run.args(init)
    assert args[args.index("--vault-role") + 1] == "$(HOME)"
    env = clean_env({**run.env(init), "IAMRA_ENDPOINT": ra.url}, home=tmp_path / "home")
    r = subprocess.run([str(iamra_bin), *args, "--termination-log", str(tmp_path / "tl"),
                        "--timeout", "20s"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    line = r.stderr.splitlines()[-1]
    assert line.startswith(ERROR_PREFIX) and 'role "$(HOME)"' in line, r.stderr
    assert "/root" not in r.stderr, r.stderr
    assert not ra.requests


def test_injected_sidecar_runs_for_real(exec_setup, openbao, tmp_path, iamra_bin):
    w, ra = exec_setup
    res = admit(w, sa_pod("sidecar"), namespace="payments")
    side = res.pod["spec"]["initContainers"][0]
    a = args_of(side)
    # only loopback here: the pod's ports become free loopback ports
    ports = {a["--listen"]: f"127.0.0.1:{free_port()}", a["--health-listen"]: f"127.0.0.1:{free_port()}"}
    run = PodRun(tmp_path / "volumes", res.pod)
    kubelet_token(openbao, run, res, side)
    env = clean_env({**run.env(side), "IAMRA_ENDPOINT": ra.url}, home=tmp_path / "home")
    proc = subprocess.Popen([str(iamra_bin), *run.args(side, ports), "--termination-log", str(tmp_path / "tl")],
                            env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("wb"))
    try:
        health = ports[a["--health-listen"]]
        probe = side["startupProbe"]["httpGet"]["path"]
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if requests.get(f"http://{health}{probe}", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        app_env = run.env(res.container("app"), ports)
        token = pathlib.Path(app_env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()
        r = requests.get(app_env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                         headers={"Authorization": token}, timeout=5)
        assert r.status_code == 200, r.text
        assert r.json()["AccessKeyId"] == ra.issued[-1]["accessKeyId"]
        # the credentials port is not the health port: no credentials there
        assert requests.get(f"http://{health}/v1/credentials", headers={"Authorization": token},
                            timeout=5).status_code == 404
    finally:
        terminate(proc)


def test_unusable_tls_files_and_busy_port_exit_2(iamra_bin, tmp_path, webhook):
    w = Webhook(iamra_bin, tmp_path)
    (tmp_path / "other.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    other = make_serving_pair(tmp_path / "other", "another CA")
    cases = [
        (["--tls-key", str(tmp_path / "missing.key")], "--tls-key"),
        (["--tls-key", str(tmp_path / "other.key")], "--tls-key"),
        (["--tls-key", str(other.parent / "tls.key")], "does not fit"),   # key of another pair
        (["--listen", f"127.0.0.1:{webhook.port}"], "pick another --listen"),
    ]
    for extra, needle in cases:
        args = list(w.args)
        i = args.index(extra[0])
        args[i + 1] = extra[1]
        p = subprocess.run(args, env=clean_env(), capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (extra, p.stderr)
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
        assert len(lines) == 1 and needle in lines[0], (extra, p.stderr)


# ---- the SPIFFE source (iamra-bootstrap/source: spiffe) -----------------------------------

SPIFFE_ID = "spiffe://example.org/ns/payments/sa/bootstrapper"


def test_spiffe_pod_gets_the_csi_socket_and_no_vault(webhook):
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN,
                              "iamra-bootstrap/source": "spiffe"}))
    assert res.allowed, res.answer
    init = res.pod["spec"]["initContainers"][0]
    a = args_of(init)
    assert a["--spiffe-endpoint"] == "unix:///spiffe-workload-api/spire-agent.sock"
    assert not {"--vault-addr", "--pki-role", "--vault-role",
                "--service-account-token-file"} & set(a)
    vols = {v["name"]: v for v in res.pod["spec"]["volumes"]}
    assert vols["iamra-bootstrap-spiffe"] == {
        "name": "iamra-bootstrap-spiffe", "csi": {"driver": "csi.spiffe.io", "readOnly": True}}
    assert "iamra-bootstrap-token" not in vols  # no projected token
    assert {"name": "iamra-bootstrap-spiffe", "mountPath": "/spiffe-workload-api",
            "readOnly": True} in init["volumeMounts"]
    # The app containers do not get the agent's socket.
    app = res.pod["spec"]["containers"][0]
    assert all(m["name"] != "iamra-bootstrap-spiffe" for m in app["volumeMounts"])
    # Vault settings on a SPIFFE pod are a mistake worth a denial.
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN,
                              "iamra-bootstrap/source": "spiffe",
                              "iamra-bootstrap/pki-role": "x"}))
    assert not res.allowed and "iamra-bootstrap/pki-role" in res.message
    res = admit(webhook, pod({"iamra-bootstrap/role-arn": ROLE_ARN,
                              "iamra-bootstrap/source": "spire"}))
    assert not res.allowed and "use vault or spiffe" in res.message


def test_spiffe_default_source_needs_no_vault_settings(iamra_bin, tmp_path):
    w = Webhook(iamra_bin, tmp_path / "wh", extra=["--default-source", "spiffe"])
    w.args = [a for i, a in enumerate(w.args)
              if a not in ("--vault-addr", "--pki-role")
              and w.args[i - 1] not in ("--vault-addr", "--pki-role")]
    w.start()
    try:
        res = admit(w, sa_pod("sidecar"))
        assert res.allowed, res.answer
        side = res.pod["spec"]["initContainers"][0]
        assert side["args"][0] == "serve"
        assert args_of(side)["--spiffe-endpoint"].startswith("unix:///spiffe-workload-api/")
        # A pod asking for Vault from a webhook without Vault settings is denied, naming why.
        res = admit(w, pod({"iamra-bootstrap/role-arn": ROLE_ARN,
                            "iamra-bootstrap/source": "vault"}))
        assert not res.allowed and "--vault-addr" in res.message
    finally:
        w.stop()


def test_injected_spiffe_init_container_runs_for_real(webhook, iamra_bin, tmp_path):
    import tempfile
    from fakes.workload_api import WorkloadApi
    from support.pki import make_ca
    ca = make_ca("SPIRE test root")
    ra = FakeRolesAnywhere([ca.cert_pem], region=REGION).start()
    ra.require_uri_san = SPIFFE_ID
    # A short root: a UNIX socket path has at most 107 bytes.
    root = pathlib.Path(tempfile.mkdtemp(prefix="wh-"))
    try:
        p = sa_pod("init")
        p["metadata"]["annotations"]["iamra-bootstrap/source"] = "spiffe"
        res = admit(webhook, p, namespace="payments")
        assert res.allowed, res.answer
        init = res.pod["spec"]["initContainers"][0]
        run = PodRun(root, res.pod)
        endpoint = args_of(init)["--spiffe-endpoint"]
        socket_path = run.host_path(init, endpoint.removeprefix("unix://"))
        # The SPIFFE CSI driver mounts the agent's socket folder; the agent serves in it.
        with WorkloadApi(ca, socket_path) as agent:
            agent.set_svids([agent.issue(SPIFFE_ID)])
            args = [a if a != endpoint else f"unix://{socket_path}" for a in run.args(init)]
            env = clean_env({**run.env(init), "IAMRA_ENDPOINT": ra.url}, home=tmp_path / "home")
            proc = subprocess.run([str(iamra_bin), *args,
                                   "--termination-log", str(tmp_path / "termination-log")],
                                  env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            assert ra.requests[-1].serial == str(agent.served[0].serial)
        issued = ra.issued[-1]
        app_env = run.env(res.container("app"))
        s = botocore.session.Session()
        s.set_config_variable("credentials_file", app_env["AWS_SHARED_CREDENTIALS_FILE"])
        s.set_config_variable("config_file", str(tmp_path / "no-config"))
        creds = s.get_credentials().get_frozen_credentials()
        assert creds.access_key == issued["accessKeyId"] and creds.token == issued["sessionToken"]
    finally:
        ra.stop()
        import shutil
        shutil.rmtree(root, ignore_errors=True)
