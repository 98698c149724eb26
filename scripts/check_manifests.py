#!/usr/bin/env python3
"""Helper of scripts/check-manifests.sh (not meant to be run alone).

Subcommands:
  files KUSTOMIZATION_DIR     print the files a kustomization lists under `resources:` (one per
                              line; these are whole objects, validated as they are)
  refs ROOT                   fail if a YAML file under ROOT is referenced by no kustomization
  policy BUILT.yaml...        check the rendered output of a kustomization against what
                              iamra-bootstrap needs (hardening, volumes, probes, env wiring)
  chart VALUES.yaml RENDERED.yaml
                              check a `helm template` output of charts/iamra-bootstrap against
                              what the webhook needs (hardened 2+ replicas, PDB, Service, the
                              MutatingWebhookConfiguration's settings from the values, a serving
                              certificate whose caBundle signs it, no RBAC)
  aws AWS_DIR                 parse every JSON document under AWS_DIR and check the role trust
                              policy's principal, actions and condition keys
"""
from __future__ import annotations

import json
import pathlib
import posixpath
import re
import sys

import yaml

FILE_KEYS = ("resources", "components")
PATCH_KEYS = ("patches", "patchesStrategicMerge", "patchesJson6902")


def load_kustomization(d: pathlib.Path) -> dict:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (d / name).is_file():
            return yaml.safe_load((d / name).read_text()) or {}
    raise SystemExit(f"check-manifests: error: no kustomization in {d}")


def cmd_files(d: str) -> int:
    k = load_kustomization(pathlib.Path(d))
    for r in k.get("resources") or []:
        p = pathlib.Path(d) / r
        if p.is_file():
            print(p)
    return 0


def referenced(d: pathlib.Path, k: dict) -> set[pathlib.Path]:
    out: set[pathlib.Path] = set()
    for key in FILE_KEYS:
        for r in k.get(key) or []:
            out.add((d / r).resolve())
    for key in PATCH_KEYS:
        for p in k.get(key) or []:
            path = p if isinstance(p, str) else p.get("path")
            if path:
                out.add((d / path).resolve())
    for gen in (k.get("configMapGenerator") or []) + (k.get("secretGenerator") or []):
        for f in (gen.get("files") or []) + (gen.get("envs") or []):
            out.add((d / f.split("=", 1)[-1]).resolve())
    return out


def cmd_refs(root: str) -> int:
    rootp = pathlib.Path(root)
    refs: set[pathlib.Path] = set()
    for kf in rootp.rglob("kustomization.yaml"):
        refs |= referenced(kf.parent, load_kustomization(kf.parent))
    bad = [
        p for p in sorted(rootp.rglob("*.y*ml"))
        if p.name not in ("kustomization.yaml", "kustomization.yml") and p.resolve() not in refs
    ]
    for p in bad:
        print(f"check-manifests: error: {p} is not referenced by any kustomization", file=sys.stderr)
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------
class Policy:
    def __init__(self, source: str, docs: list[dict]):
        self.source = source
        self.docs = [d for d in docs if d]
        self.errors: list[str] = []

    def err(self, where: str, msg: str) -> None:
        self.errors.append(f"{self.source}: {where}: {msg}")

    def find(self, kind: str, name: str | None = None) -> list[dict]:
        return [
            d for d in self.docs
            if d.get("kind") == kind and (name is None or d["metadata"].get("name") == name)
        ]

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def env(c: dict) -> dict[str, str]:
        return {e["name"]: e.get("value") for e in c.get("env") or []}

    def env_all(self, c: dict) -> dict[str, str]:
        """Literal env plus the ConfigMaps pulled in with envFrom (which must exist)."""
        out: dict[str, str] = {}
        for ef in c.get("envFrom") or []:
            ref = ef.get("configMapRef")
            if not ref:
                continue
            cms = self.find("ConfigMap", ref["name"])
            if not cms:
                self.err(c["name"], f"envFrom ConfigMap {ref['name']} is not in the output")
                continue
            out.update({(ef.get("prefix") or "") + k: v for k, v in (cms[0].get("data") or {}).items()})
        out.update(self.env(c))
        return out

    @staticmethod
    def locate(c: dict, path: str) -> tuple[dict, str] | None:
        """(volumeMount, path relative to it) of the mount holding `path`, longest match."""
        best = None
        for m in c.get("volumeMounts") or []:
            mp = m["mountPath"].rstrip("/")
            if path.startswith(mp + "/") and (best is None or len(mp) > len(best[0]["mountPath"])):
                best = (m, path[len(mp) + 1:])
        return best

    # -- checks ---------------------------------------------------------------------------------
    def hardened(self, where: str, pod: dict, c: dict) -> None:
        psc = pod.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        eff = {**psc, **sc}
        if eff.get("runAsNonRoot") is not True:
            self.err(where, "runAsNonRoot must be true")
        if eff.get("runAsUser") in (None, 0):
            self.err(where, "runAsUser must be a non-zero uid")
        if (eff.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            self.err(where, "seccompProfile must be RuntimeDefault")
        if sc.get("readOnlyRootFilesystem") is not True:
            self.err(where, "readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            self.err(where, "allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            self.err(where, "must not be privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            self.err(where, "capabilities.drop must contain ALL")
        if (sc.get("capabilities") or {}).get("add"):
            self.err(where, "must add no capabilities")
        res = c.get("resources") or {}
        for k in ("cpu", "memory"):
            if k not in (res.get("requests") or {}):
                self.err(where, f"resources.requests.{k} missing")
        if "memory" not in (res.get("limits") or {}):
            self.err(where, "resources.limits.memory missing")
        if c.get("terminationMessagePolicy") != "FallbackToLogsOnError":
            self.err(where, "terminationMessagePolicy must be FallbackToLogsOnError")

    def memory_dir(self, where: str, pod: dict, c: dict, path: str | None, what: str):
        if not path:
            self.err(where, f"{what} not set")
            return None
        loc = self.locate(c, path)
        if not loc:
            self.err(where, f"{what} {path} is on no volume")
            return None
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        vol = vols.get(loc[0]["name"], {})
        if (vol.get("emptyDir") or {}).get("medium") != "Memory":
            self.err(where, f"{what} {path}: volume {loc[0]['name']} must be an emptyDir with medium: Memory")
        if loc[0].get("readOnly"):
            self.err(where, f"{what} {path}: mount must be writable")
        return loc

    def app_path(self, where: str, app: dict, loc: tuple[dict, str], what: str) -> str | None:
        for m in app.get("volumeMounts") or []:
            if m["name"] == loc[0]["name"]:
                if not m.get("readOnly"):
                    self.err(where, f"app mounts {m['name']} ({what}) writable; mount it readOnly")
                return posixpath.join(m["mountPath"], loc[1])
        self.err(where, f"app does not mount volume {loc[0]['name']} ({what})")
        return None

    def workload(self, kind: str, obj: dict) -> None:
        pod = obj["spec"]["template"]["spec"]
        name = f"{kind}/{obj['metadata']['name']}"
        inits = pod.get("initContainers") or []
        apps = pod.get("containers") or []
        for c in inits + apps:
            self.hardened(f"{name} container {c['name']}", pod, c)
        if pod.get("automountServiceAccountToken") is not False:
            self.err(name, "automountServiceAccountToken must be false (the projected vault token is enough)")
        iam = [c for c in inits if "iamra-bootstrap" in c.get("image", "")]
        if any("iamra-bootstrap" in c.get("image", "") for c in apps):
            self.err(name, "iamra-bootstrap must run as an init container (one-shot or native sidecar)")
        if len(iam) != 1:
            self.err(name, f"expected one iamra-bootstrap init container, found {len(iam)}")
            return
        c = iam[0]
        where = f"{name} container {c['name']}"
        env = self.env_all(c)
        for k in ("IAMRA_TRUST_ANCHOR_ARN", "IAMRA_PROFILE_ARN", "IAMRA_ROLE_ARN"):
            if not env.get(k):
                self.err(where, f"{k} not set")
        if not any(ef.get("configMapRef") for ef in c.get("envFrom") or []):
            self.err(where, "the ARNs must come from a ConfigMap (envFrom)")
        # Vault login token: a projected serviceAccountToken with audience vault, >= 600 s.
        tok = env.get("IAMRA_SERVICE_ACCOUNT_TOKEN_FILE", "/var/run/secrets/kubernetes.io/serviceaccount/token")
        loc = self.locate(c, tok)
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        src = None
        if loc:
            for s in ((vols.get(loc[0]["name"]) or {}).get("projected") or {}).get("sources") or []:
                sat = s.get("serviceAccountToken")
                if sat and sat.get("path") == loc[1]:
                    src = sat
        if not src:
            self.err(where, f"SA token {tok} is not a projected serviceAccountToken")
        else:
            if src.get("audience") != "vault":
                self.err(where, f"projected token audience is {src.get('audience')!r}, expected 'vault'")
            if int(src.get("expirationSeconds", 3600)) < 600:
                self.err(where, "projected token expirationSeconds must be >= 600")
        args = (c.get("command") or []) + (c.get("args") or [])
        mode = args[0] if args else "init"
        if len(apps) != 1:
            self.err(name, f"expected one app container, found {len(apps)}")
            return
        app = apps[0]
        aenv = self.env(app)
        uid = lambda x: {**(pod.get("securityContext") or {}), **(x.get("securityContext") or {})}.get("runAsUser")
        if uid(app) != uid(c):
            self.err(name, f"app runs as uid {uid(app)}, iamra-bootstrap as {uid(c)}: the 0600 files it writes are for its own uid")
        if not aenv.get("AWS_REGION"):
            self.err(name, "app: AWS_REGION not set")
        if mode == "init":
            if c.get("restartPolicy"):
                self.err(where, "a one-shot init container takes no restartPolicy")
            for p in ("startupProbe", "readinessProbe", "livenessProbe"):
                if p in c:
                    self.err(where, f"a one-shot init container takes no {p}")
            path = env.get("IAMRA_CREDENTIALS_FILE") or env.get("AWS_SHARED_CREDENTIALS_FILE")
            loc = self.memory_dir(where, pod, c, path, "credentials file")
            if loc:
                want = self.app_path(name, app, loc, "credentials")
                if want and aenv.get("AWS_SHARED_CREDENTIALS_FILE") != want:
                    self.err(name, f"app AWS_SHARED_CREDENTIALS_FILE is {aenv.get('AWS_SHARED_CREDENTIALS_FILE')!r}, expected {want!r}")
        elif mode == "serve":
            if c.get("restartPolicy") != "Always":
                self.err(where, "serve must be a native sidecar (restartPolicy: Always)")
            listen = env.get("IAMRA_LISTEN", "127.0.0.1:9911")
            port = int(listen.rsplit(":", 1)[1])
            if listen.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]"):
                self.err(where, f"IAMRA_LISTEN {listen}: kubelet probes reach the pod IP, not loopback")
            probe = (c.get("startupProbe") or {}).get("httpGet") or {}
            pport = probe.get("port")
            if isinstance(pport, str):
                pport = next((p["containerPort"] for p in c.get("ports") or [] if p.get("name") == pport), None)
            if probe.get("path") != "/readyz" or pport != port:
                self.err(where, f"startupProbe must be httpGet /readyz on port {port}")
            tloc = self.memory_dir(where, pod, c, env.get("IAMRA_AUTH_TOKEN_FILE"), "IAMRA_AUTH_TOKEN_FILE")
            want_uri = f"http://127.0.0.1:{port}/v1/credentials"
            if aenv.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") != want_uri:
                self.err(name, f"app AWS_CONTAINER_CREDENTIALS_FULL_URI must be {want_uri}")
            if "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" in aenv:
                self.err(name, "app: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI would win over FULL_URI")
            if tloc:
                want = self.app_path(name, app, tloc, "auth token")
                if want and aenv.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") != want:
                    self.err(name, f"app AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE must be {want}")
            if "AWS_SHARED_CREDENTIALS_FILE" in aenv:
                self.err(name, "app: AWS_SHARED_CREDENTIALS_FILE left over in sidecar mode")
        else:
            self.err(where, f"unexpected command {mode!r} (init or serve)")

    def run(self) -> list[str]:
        workloads = [(d["kind"], d) for d in self.docs if d.get("kind") in ("Deployment", "StatefulSet", "Job", "DaemonSet")]
        if not workloads:
            self.err("-", "no workload")
        for kind, obj in workloads:
            self.workload(kind, obj)
        crbs = [
            d for d in self.find("ClusterRoleBinding")
            if d["roleRef"].get("name") == "system:auth-delegator"
            and any(s.get("kind") == "ServiceAccount" and s.get("namespace") for s in d.get("subjects") or [])
        ]
        if not crbs:
            self.err("-", "no ClusterRoleBinding granting system:auth-delegator to Vault's reviewer ServiceAccount")
        for sa in self.find("ServiceAccount"):
            if sa.get("automountServiceAccountToken") is not False:
                self.err(f"ServiceAccount/{sa['metadata']['name']}", "automountServiceAccountToken should be false")
        for d in self.docs:
            kind = d.get("kind")
            if kind not in ("Namespace", "ClusterRoleBinding", "ClusterRole") and not d["metadata"].get("namespace"):
                self.err(f"{kind}/{d['metadata'].get('name')}", "no namespace after the build")
        return self.errors


def cmd_policy(files: list[str]) -> int:
    errors: list[str] = []
    for f in files:
        errors += Policy(f, list(yaml.safe_load_all(pathlib.Path(f).read_text()))).run()
    for e in errors:
        print(f"check-manifests: error: {e}", file=sys.stderr)
    return 1 if errors else 0


# ---------------------------------------------------------------------------------------------
def cmd_chart(values_file: str, rendered: str) -> int:
    """Policy for the rendered Helm chart (one value set)."""
    import base64
    from cryptography import x509

    values = yaml.safe_load(pathlib.Path(values_file).read_text()) or {}
    p = Policy(rendered, list(yaml.safe_load_all(pathlib.Path(rendered).read_text())))
    wv = {"failurePolicy": "Fail", "timeoutSeconds": 5, "reinvocationPolicy": "IfNeeded",
          **(values.get("webhook") or {})}
    source = (values.get("certificate") or {}).get("source", "generate")
    deps = p.find("Deployment")
    if len(deps) != 1:
        p.err("-", f"expected one Deployment, found {len(deps)}")
        return _report(p.errors)
    dep = deps[0]
    name = dep["metadata"]["name"]
    pod = dep["spec"]["template"]["spec"]
    if dep["spec"].get("replicas", 1) < 2:
        p.err(name, "the webhook needs at least 2 replicas")
    for c in pod.get("containers") or []:
        p.hardened(f"Deployment/{name} container {c['name']}", pod, c)
        if (c.get("args") or [None])[0] != "webhook":
            p.err(name, f"container {c['name']} does not run `webhook`")
        env = p.env(c)
        required = ["IAMRA_TLS_CERT", "IAMRA_TLS_KEY", "IAMRA_IMAGE", "IAMRA_TRUST_ANCHOR_ARN",
                    "IAMRA_PROFILE_ARN", "IAMRA_LISTEN"]
        # Vault's settings are needed unless SPIFFE is the default source.
        if env.get("IAMRA_DEFAULT_SOURCE", "vault") == "vault":
            required += ["IAMRA_VAULT_ADDR", "IAMRA_PKI_ROLE"]
        for k in required:
            if not env.get(k):
                p.err(name, f"{k} not set")
        for probe in ("readinessProbe", "livenessProbe"):
            if ((c.get(probe) or {}).get("httpGet") or {}).get("scheme") != "HTTPS":
                p.err(name, f"{probe} must be an HTTPS httpGet")
    if pod.get("automountServiceAccountToken") is not False:
        p.err(name, "automountServiceAccountToken must be false (the webhook calls no API)")
    labels = dep["spec"]["selector"]["matchLabels"]
    pdbs = [d for d in p.find("PodDisruptionBudget")
            if d["spec"]["selector"].get("matchLabels") == labels]
    if not pdbs:
        p.err(name, "no PodDisruptionBudget selects the webhook pods")
    svcs = [d for d in p.find("Service") if d["spec"].get("selector") == labels]
    if not svcs:
        p.err(name, "no Service selects the webhook pods")
    for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        for d in p.find(kind):
            p.err(f"{kind}/{d['metadata']['name']}", "the chart needs no RBAC at run time")
    mwcs = p.find("MutatingWebhookConfiguration")
    if len(mwcs) != 1:
        p.err("-", f"expected one MutatingWebhookConfiguration, found {len(mwcs)}")
        return _report(p.errors)
    mwc = mwcs[0]
    tls_secret = next((v["secret"]["secretName"] for v in pod.get("volumes") or [] if "secret" in v), None)
    for w in mwc["webhooks"]:
        where = f"MutatingWebhookConfiguration webhook {w['name']}"
        for k in ("failurePolicy", "timeoutSeconds", "reinvocationPolicy"):
            if w.get(k) != wv[k]:
                p.err(where, f"{k} is {w.get(k)!r}, the values say {wv[k]!r}")
        if w.get("sideEffects") != "None":
            p.err(where, "sideEffects must be None")
        if not 1 <= int(w.get("timeoutSeconds", 10)) <= 10:
            p.err(where, "timeoutSeconds must be short (<= 10)")
        rules = w.get("rules") or []
        if not any("pods" in r.get("resources", []) and "CREATE" in r.get("operations", []) for r in rules):
            p.err(where, "must intercept pod CREATE")
        svc = (w.get("clientConfig") or {}).get("service") or {}
        if svc.get("path") != "/mutate" or not any(s["metadata"]["name"] == svc.get("name") for s in svcs):
            p.err(where, "clientConfig.service must be the webhook Service, path /mutate")
        exprs = (w.get("namespaceSelector") or {}).get("matchExpressions") or []
        ns = dep["metadata"].get("namespace")
        if not any(e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn"
                   and ns in e.get("values", []) for e in exprs):
            p.err(where, f"namespaceSelector must exclude the webhook's own namespace {ns}")
        if not (w.get("namespaceSelector") or {}).get("matchLabels") and not w.get("objectSelector") \
                and len(exprs) < 2:
            p.err(where, "opt-in needs a namespace label or an object selector")
        if source == "generate":
            secrets = [d for d in p.find("Secret", tls_secret)]
            if not secrets:
                p.err(where, f"the TLS Secret {tls_secret} is not rendered")
                continue
            ca = x509.load_pem_x509_certificate(base64.b64decode(w["clientConfig"].get("caBundle", "")))
            leaf = x509.load_pem_x509_certificate(base64.b64decode(secrets[0]["data"]["tls.crt"]))
            try:
                leaf.verify_directly_issued_by(ca)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                p.err(where, f"caBundle did not sign the serving certificate: {e}")
            dns = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            want = f"{svc.get('name')}.{svc.get('namespace')}.svc"
            if want not in dns.get_values_for_type(x509.DNSName):
                p.err(where, f"serving certificate lacks the SAN {want}")
        else:
            certs = [d for d in p.find("Certificate") if d["spec"].get("secretName") == tls_secret]
            if not certs:
                p.err(where, f"no cert-manager Certificate writes {tls_secret}")
                continue
            c = certs[0]
            ann = (mwc["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from")
            if ann != f"{c['metadata']['namespace']}/{c['metadata']['name']}":
                p.err(where, "cert-manager.io/inject-ca-from must name the Certificate")
            want = f"{svc.get('name')}.{svc.get('namespace')}.svc"
            if want not in c["spec"].get("dnsNames", []):
                p.err(where, f"Certificate lacks the dnsName {want}")
            ref = c["spec"].get("issuerRef") or {}
            if not ref.get("name"):
                p.err(where, "Certificate has no issuerRef")
            elif ref.get("kind", "Issuer") == "Issuer" and not p.find("Issuer", ref["name"]):
                p.err(where, f"Issuer {ref['name']} is not rendered")
    for d in p.docs:
        kind = d.get("kind")
        if kind != "MutatingWebhookConfiguration" and not d["metadata"].get("namespace"):
            p.err(f"{kind}/{d['metadata'].get('name')}", "no namespace")
    return _report(p.errors, f"chart: {len(p.docs)} objects policy-clean ({values_file})")


def _report(errors: list[str], ok: str = "") -> int:
    for e in errors:
        print(f"check-manifests: error: {e}", file=sys.stderr)
    if not errors and ok:
        print(ok, file=sys.stderr)
    return 1 if errors else 0


# ---------------------------------------------------------------------------------------------
CN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.workload\.internal$")


def cmd_aws(d: str) -> int:
    errors: list[str] = []
    docs = {}
    for p in sorted(pathlib.Path(d).rglob("*.json")):
        try:
            docs[p.name] = json.loads(p.read_text())
        except ValueError as e:
            errors.append(f"{p}: {e}")
    tp = docs.get("trust-policy.json")
    if tp is None:
        errors.append(f"{d}/trust-policy.json missing")
    else:
        if tp.get("Version") != "2012-10-17":
            errors.append("trust-policy.json: Version must be 2012-10-17")
        stmts = tp.get("Statement") or []
        if not stmts:
            errors.append("trust-policy.json: no Statement")
        for i, s in enumerate(stmts):
            w = f"trust-policy.json Statement[{i}]"
            if s.get("Effect") != "Allow":
                errors.append(f"{w}: Effect must be Allow")
            svc = (s.get("Principal") or {}).get("Service")
            if svc != "rolesanywhere.amazonaws.com" and svc != ["rolesanywhere.amazonaws.com"]:
                errors.append(f"{w}: Principal.Service must be rolesanywhere.amazonaws.com")
            acts = s.get("Action")
            acts = {acts} if isinstance(acts, str) else set(acts or [])
            want = {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}
            if acts != want:
                errors.append(f"{w}: Action must be exactly {sorted(want)}")
            cond = s.get("Condition") or {}
            se = cond.get("StringEquals") or {}
            cn = se.get("aws:PrincipalTag/x509Subject/CN")
            if not isinstance(cn, str) or not CN_RE.match(cn):
                errors.append(f"{w}: StringEquals aws:PrincipalTag/x509Subject/CN must be one <sa>.<namespace>.workload.internal")
            if not isinstance(se.get("aws:PrincipalTag/x509Issuer/CN"), str):
                errors.append(f"{w}: StringEquals aws:PrincipalTag/x509Issuer/CN (the Vault intermediate's CN) missing")
            src = (cond.get("ArnEquals") or {}).get("aws:SourceArn", "")
            if ":trust-anchor/" not in str(src):
                errors.append(f"{w}: ArnEquals aws:SourceArn must name the trust anchor")
            for op in cond:
                if op.startswith(("StringLike", "ForAnyValue")) and any("x509Subject" in k for k in cond[op]):
                    errors.append(f"{w}: {op} on the subject would let other identities in")
    for e in errors:
        print(f"check-manifests: error: {e}", file=sys.stderr)
    if not errors:
        print(f"aws: {len(docs)} JSON documents parse; trust policy conditions OK")
    return 1 if errors else 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[1], argv[2:]
    if cmd == "files" and len(rest) == 1:
        return cmd_files(rest[0])
    if cmd == "refs" and len(rest) == 1:
        return cmd_refs(rest[0])
    if cmd == "policy" and rest:
        return cmd_policy(rest)
    if cmd == "chart" and len(rest) == 2:
        return cmd_chart(rest[0], rest[1])
    if cmd == "aws" and len(rest) == 1:
        return cmd_aws(rest[0])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
