//! The pure part of the webhook: a pod and what it asks for in, an RFC 6902 JSON Patch and
//! warnings out. No I/O; every path in the patch is computed against the pod as it arrived.
//!
//! What a pod gets (constants below; see `docs/webhook.md`):
//! - volumes [`AWS_VOLUME`] (`emptyDir`, `medium: Memory`) and [`TOKEN_VOLUME`] (a projected
//!   ServiceAccount token for `--token-audience`, 600 s), or for a SPIFFE pod (annotation
//!   `iamra-bootstrap/source: spiffe`) [`SPIFFE_VOLUME`] instead: the SPIFFE CSI driver's
//!   socket volume (`csi.spiffe.io`, read-only) mounted at [`SPIFFE_DIR`] in the injected
//!   container, which gets `--spiffe-endpoint` [`SPIFFE_ENDPOINT`] and no Vault settings;
//! - first in `initContainers`, [`CONTAINER`]: `iamra-bootstrap init` writing
//!   [`CREDENTIALS_FILE`], or (sidecar) `serve` as a native sidecar (`restartPolicy: Always`)
//!   with the credentials endpoint on `127.0.0.1:`[`CREDENTIALS_PORT`], `/healthz`, `/readyz` and
//!   `/metrics` on `0.0.0.0:`[`HEALTH_PORT`] for the kubelet's probes, and the auth token in
//!   [`TOKEN_FILE`]; its command line is in its own `args`, it runs as the uid the selected app
//!   containers declare (when they agree, else 65534), hardened like the image;
//! - each selected app container: [`AWS_VOLUME`] mounted read-only at [`AWS_DIR`], and
//!   `AWS_SHARED_CREDENTIALS_FILE` (init) or `AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (sidecar), and `AWS_REGION`; a variable the
//!   container sets already is kept, with a warning naming it.
//!
//! Every value copied into the injected container's `args` or an app container's `env` (the
//! ServiceAccount name, the ARNs and roles, the Vault address, ...) goes through
//! [`kubelet_escape`]: the kubelet expands `$(VAR)` in `args` and `env` and turns `$$` into `$`,
//! so each `$` is doubled and the container sees the value as it was (a ServiceAccount named
//! `$(HOME)` logs in as the Vault role `$(HOME)`, not as the value of `HOME`). Names and values
//! in denials and warnings go through [`crate::limits::quote`].
//!
//! Idempotent: a pod whose `initContainers` has [`CONTAINER`] gets no second copy; only the
//! per-container part is applied where missing (containers added by a later webhook, on
//! reinvocation). So mutating twice is mutating once.
//!
//! The injected objects are written as JSON here; the unit tests read each back as its
//! `k8s_openapi` type (Kubernetes 1.33) and require the round trip to give the same JSON, so
//! every field name and type is one the Kubernetes API has. (Serializing `k8s_openapi` values at
//! run time instead cost 364 KB of binary: the serde code of the dozens of nested types a
//! `Container` and a `Volume` can hold.)

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::{Value, json};

use super::annotations::Request;
use super::pod::Pod;
use super::{CertSource, Defaults, Mode};
use crate::limits::quote;

/// Name of the injected container (also the marker of an injected pod).
pub(crate) const CONTAINER: &str = "iamra-bootstrap";
/// The in-memory volume holding the credentials file or the auth token.
pub(crate) const AWS_VOLUME: &str = "iamra-bootstrap-aws";
/// The projected ServiceAccount token volume.
pub(crate) const TOKEN_VOLUME: &str = "iamra-bootstrap-token";
/// Where [`AWS_VOLUME`] is mounted, in the injected container and the app containers.
pub(crate) const AWS_DIR: &str = "/var/run/iamra-bootstrap";
/// The credentials file (`init`).
pub(crate) const CREDENTIALS_FILE: &str = "/var/run/iamra-bootstrap/credentials";
/// The auth token file (`sidecar`).
pub(crate) const TOKEN_FILE: &str = "/var/run/iamra-bootstrap/token";
/// Where [`TOKEN_VOLUME`] is mounted in the injected container.
pub(crate) const SA_TOKEN_DIR: &str = "/var/run/secrets/iamra-bootstrap";
/// The ServiceAccount token file.
pub(crate) const SA_TOKEN_FILE: &str = "/var/run/secrets/iamra-bootstrap/token";
/// SPIFFE: the SPIFFE CSI driver's volume (`csi.spiffe.io`, read-only), holding the agent's
/// Workload API socket.
pub(crate) const SPIFFE_VOLUME: &str = "iamra-bootstrap-spiffe";
/// Where [`SPIFFE_VOLUME`] is mounted in the injected container.
pub(crate) const SPIFFE_DIR: &str = "/spiffe-workload-api";
/// The Workload API endpoint in [`SPIFFE_DIR`] (SPIRE's socket name in the CSI volume).
pub(crate) const SPIFFE_ENDPOINT: &str = "unix:///spiffe-workload-api/spire-agent.sock";
/// Sidecar: the credentials endpoint's port, on the pod's loopback.
pub(crate) const CREDENTIALS_PORT: u16 = 9911;
/// Sidecar: the health port, on the pod IP (kubelet probes).
pub(crate) const HEALTH_PORT: u16 = 9912;
/// Sidecar: the health port's name (the probes refer to it).
pub(crate) const HEALTH_PORT_NAME: &str = "iamra-health";
/// Lifetime asked for the projected ServiceAccount token (the kubelet's minimum is 600).
pub(crate) const SA_TOKEN_SECONDS: i64 = 600;
/// The uid when the app containers do not agree on one (the image's).
pub(crate) const DEFAULT_UID: i64 = 65534;

/// The result: the patch (empty: nothing to change) and warnings for the user.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Mutation {
    /// RFC 6902 operations against the pod as received.
    pub(crate) patch: Patch,
    /// Warnings for the response (a kept variable, ...).
    pub(crate) warnings: Vec<String>,
}

/// Why a pod cannot be injected as annotated (denied with this message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchError(pub String);

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatchError {}

fn ptr(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn add(ops: &mut Vec<PatchOperation>, tokens: &[&str], value: Value) {
    ops.push(PatchOperation::Add(AddOperation {
        path: ptr(tokens),
        value,
    }));
}

/// Appends `items` to the array at `tokens`: one `add` per item to `/-` when the array
/// exists, else one `add` of the whole array.
fn append(ops: &mut Vec<PatchOperation>, tokens: &[&str], exists: bool, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if exists {
        let mut t = tokens.to_vec();
        t.push("-");
        for item in items {
            add(ops, &t, item);
        }
    } else {
        add(ops, tokens, Value::Array(items));
    }
}

/// Builds the patch for `pod`, which asked for `req`.
pub(crate) fn build(pod: &Pod, req: &Request, defaults: &Defaults) -> Result<Mutation, PatchError> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| PatchError("the pod has no spec".into()))?;
    let mut ops = Vec::new();
    let mut warnings = Vec::new();

    // The app containers that get the environment.
    let selected: Vec<usize> = match &req.containers {
        None => (0..spec.containers.len()).collect(),
        Some(names) => {
            let mut idx = Vec::new();
            for n in names {
                match spec.containers.iter().position(|c| &c.name == n) {
                    Some(i) if idx.contains(&i) => {}
                    Some(i) => idx.push(i),
                    None => {
                        let have: Vec<&str> =
                            spec.containers.iter().map(|c| c.name.as_str()).collect();
                        return Err(PatchError(format!(
                            "annotation iamra-bootstrap/containers: the pod has no container {} (its containers: {})",
                            quote(n),
                            quote(&have.join(", "))
                        )));
                    }
                }
            }
            idx
        }
    };

    let inits = spec.init_containers.as_deref().unwrap_or(&[]);
    let injected = inits.iter().any(|c| c.name == CONTAINER);
    if !injected {
        if let Some(c) = spec.containers.iter().find(|c| c.name == CONTAINER) {
            return Err(PatchError(format!(
                "the pod has an app container named {}, the name of the injected container; rename it",
                quote(&c.name)
            )));
        }
        let volumes = spec.volumes.as_deref().unwrap_or(&[]);
        for v in [AWS_VOLUME, TOKEN_VOLUME, SPIFFE_VOLUME] {
            if volumes.iter().any(|x| x.name == v) {
                return Err(PatchError(format!(
                    "the pod already has a volume named {}, a name the injection uses; rename it",
                    quote(v)
                )));
            }
        }
        let uid = app_uid(pod, &selected);
        let sa = spec.service_account_name.as_deref().unwrap_or("default");
        let container = injected_container(req, defaults, uid, sa);
        // First in initContainers: the credentials exist before any other init container runs.
        match spec.init_containers {
            Some(_) => add(&mut ops, &["spec", "initContainers", "0"], container),
            None => add(
                &mut ops,
                &["spec", "initContainers"],
                Value::Array(vec![container]),
            ),
        }
        append(
            &mut ops,
            &["spec", "volumes"],
            spec.volumes.is_some(),
            vec![
                aws_volume(),
                match req.source {
                    CertSource::Vault => token_volume(&defaults.token_audience),
                    CertSource::Spiffe => spiffe_volume(),
                },
            ],
        );
    }

    // As the kubelet will expand them, so that the app sees the values themselves.
    let env: Vec<(String, String)> = app_env(req)
        .into_iter()
        .map(|(name, value)| (name, kubelet_escape(&value)))
        .collect();
    for &i in &selected {
        let c = &spec.containers[i];
        let idx = i.to_string();
        let base = ["spec", "containers", idx.as_str()];
        let mut new_env = Vec::new();
        for (name, value) in &env {
            match c
                .env
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .find(|e| &e.name == name)
            {
                None => new_env.push(json!({"name": name, "value": value})),
                Some(e) if e.value.as_deref() == Some(value.as_str()) => {}
                Some(_) => warnings.push(format!(
                    "iamra-bootstrap: container {} sets {name} itself; kept it (the injected value is {})",
                    quote(&c.name),
                    quote(value)
                )),
            }
        }
        append(
            &mut ops,
            &[base[0], base[1], base[2], "env"],
            c.env.is_some(),
            new_env,
        );
        let mounts = c.volume_mounts.as_deref().unwrap_or(&[]);
        if !mounts.iter().any(|m| m.name == AWS_VOLUME) {
            if let Some(m) = mounts.iter().find(|m| m.mount_path == AWS_DIR) {
                return Err(PatchError(format!(
                    "container {} already mounts volume {} at {AWS_DIR}, where the injection mounts its own",
                    quote(&c.name),
                    quote(&m.name)
                )));
            }
            append(
                &mut ops,
                &[base[0], base[1], base[2], "volumeMounts"],
                c.volume_mounts.is_some(),
                vec![json!({"name": AWS_VOLUME, "mountPath": AWS_DIR, "readOnly": true})],
            );
        }
    }
    Ok(Mutation {
        patch: Patch(ops),
        warnings,
    })
}

/// The uid the selected app containers run as, when they all declare the same non-root one
/// (container `runAsUser`, else the pod's); else [`DEFAULT_UID`].
fn app_uid(pod: &Pod, selected: &[usize]) -> i64 {
    let Some(spec) = &pod.spec else {
        return DEFAULT_UID;
    };
    let pod_uid = spec.security_context.as_ref().and_then(|s| s.run_as_user);
    let mut uids = selected.iter().map(|&i| {
        spec.containers[i]
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .or(pod_uid)
    });
    match uids.next() {
        Some(Some(first)) if first != 0 && uids.all(|u| u == Some(first)) => first,
        _ => DEFAULT_UID,
    }
}

/// The environment of the selected app containers, in order.
fn app_env(req: &Request) -> Vec<(String, String)> {
    let mut env = match req.mode {
        Mode::Init => vec![(
            "AWS_SHARED_CREDENTIALS_FILE".to_string(),
            CREDENTIALS_FILE.to_string(),
        )],
        Mode::Sidecar => vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
                format!("http://127.0.0.1:{CREDENTIALS_PORT}/v1/credentials"),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".to_string(),
                TOKEN_FILE.to_string(),
            ),
        ],
    };
    env.push(("AWS_REGION".to_string(), req.target.region.clone()));
    env
}

fn aws_volume() -> Value {
    json!({"name": AWS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
}

fn token_volume(audience: &str) -> Value {
    json!({
        "name": TOKEN_VOLUME,
        "projected": {
            // Read by the injected container only (the one mounting it), whatever its uid.
            "defaultMode": 0o444,
            "sources": [{"serviceAccountToken": {
                "audience": audience,
                "expirationSeconds": SA_TOKEN_SECONDS,
                "path": "token",
            }}],
        },
    })
}

fn spiffe_volume() -> Value {
    json!({"name": SPIFFE_VOLUME, "csi": {"driver": "csi.spiffe.io", "readOnly": true}})
}

/// `value` escaped for the kubelet's expansion of `$(VAR)` in a container's `args` and `env`
/// (Kubernetes: "Define Dependent Environment Variables"; `third_party/forked/golang/expansion`):
/// the kubelet turns `$$` into `$` and `$(NAME)` of a defined variable into its value, so with
/// every `$` doubled nothing is expanded and the container sees `value` itself.
pub(crate) fn kubelet_escape(value: &str) -> String {
    value.replace('$', "$$")
}

/// The command line of the injected container (each value escaped: [`kubelet_escape`]).
fn args(req: &Request, defaults: &Defaults, service_account: &str) -> Vec<String> {
    let mut a: Vec<String> = match req.mode {
        Mode::Init => vec!["init".into()],
        Mode::Sidecar => vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{CREDENTIALS_PORT}"),
            "--health-listen".into(),
            format!("0.0.0.0:{HEALTH_PORT}"),
            "--auth-token-file".into(),
            TOKEN_FILE.into(),
        ],
    };
    let t = &req.target;
    let mut flags = vec![
        ("--trust-anchor-arn", t.trust_anchor.raw.as_str()),
        ("--profile-arn", t.profile.raw.as_str()),
        ("--role-arn", t.role.raw.as_str()),
    ];
    match req.source {
        CertSource::Vault => flags.extend([
            ("--vault-addr", defaults.vault_addr.as_deref().unwrap_or("")),
            (
                "--vault-role",
                req.vault_role.as_deref().unwrap_or(service_account),
            ),
            ("--pki-role", req.pki_role.as_deref().unwrap_or("")),
            ("--service-account-token-file", SA_TOKEN_FILE),
        ]),
        CertSource::Spiffe => flags.push(("--spiffe-endpoint", SPIFFE_ENDPOINT)),
    }
    for (flag, value) in flags {
        a.push(flag.into());
        a.push(kubelet_escape(value));
    }
    if req.mode == Mode::Init {
        a.push("--credentials-file".into());
        a.push(CREDENTIALS_FILE.into());
    }
    if let Some(d) = req.session_duration {
        a.push("--session-duration".into());
        a.push(d.to_string());
    }
    a
}

fn injected_container(req: &Request, defaults: &Defaults, uid: i64, sa: &str) -> Value {
    let mut c = json!({
        "name": CONTAINER,
        "image": defaults.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args(req, defaults, sa),
        "volumeMounts": [
            {"name": AWS_VOLUME, "mountPath": AWS_DIR},
            match req.source {
                CertSource::Vault => json!({"name": TOKEN_VOLUME, "mountPath": SA_TOKEN_DIR, "readOnly": true}),
                CertSource::Spiffe => json!({"name": SPIFFE_VOLUME, "mountPath": SPIFFE_DIR, "readOnly": true}),
            },
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "500m", "memory": "64Mi"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": uid,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    });
    if req.mode == Mode::Sidecar {
        let probe = |path: &str, period: i32, failures: i32| {
            json!({
                "httpGet": {"path": path, "port": HEALTH_PORT_NAME},
                "periodSeconds": period,
                "timeoutSeconds": 2,
                "failureThreshold": failures,
            })
        };
        let o = c.as_object_mut().expect("an object");
        o.insert("restartPolicy".into(), json!("Always"));
        o.insert(
            "ports".into(),
            json!([{"name": HEALTH_PORT_NAME, "containerPort": HEALTH_PORT, "protocol": "TCP"}]),
        );
        o.insert("startupProbe".into(), probe("/readyz", 1, 120));
        o.insert("readinessProbe".into(), probe("/readyz", 10, 3));
        o.insert("livenessProbe".into(), probe("/healthz", 30, 3));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::annotations::{Parsed, parse};
    use crate::webhook::tests::defaults;
    use std::collections::BTreeMap;

    const ROLE: &str = "arn:aws:iam::123456789012:role/payments";

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn request(pod: &Pod) -> Request {
        match parse(pod.metadata.annotations.as_ref(), &defaults()).unwrap() {
            Parsed::Inject(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    /// Applies the patch with json-patch's own `patch` (RFC 6902 semantics).
    fn apply(v: &Value, m: &Mutation) -> Value {
        let mut out = v.clone();
        json_patch::patch(&mut out, &m.patch).unwrap();
        out
    }

    fn mutate(v: &Value) -> (Value, Mutation) {
        let p = pod(v.clone());
        let m = build(&p, &request(&p), &defaults()).unwrap();
        (apply(v, &m), m)
    }

    fn bare(annotations: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "payments-7d9f-", "annotations": annotations},
            "spec": {"serviceAccountName": "payments", "containers": [{"name": "app", "image": "app:1"}]}
        })
    }

    fn env_of(c: &Value) -> BTreeMap<String, String> {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn bare_pod_init_mode() {
        let (out, m) = mutate(&bare(json!({"iamra-bootstrap/role-arn": ROLE})));
        assert!(m.warnings.is_empty());
        let init = &out["spec"]["initContainers"][0];
        assert_eq!(init["name"], CONTAINER);
        assert_eq!(init["image"], "iamra-bootstrap:test");
        let args: Vec<&str> = init["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "init");
        let flag = |f: &str| args[args.iter().position(|a| *a == f).unwrap() + 1];
        assert_eq!(flag("--role-arn"), ROLE);
        assert_eq!(flag("--vault-role"), "payments", "the ServiceAccount name");
        assert_eq!(flag("--credentials-file"), CREDENTIALS_FILE);
        assert_eq!(flag("--service-account-token-file"), SA_TOKEN_FILE);
        assert!(init.get("restartPolicy").is_none());
        let sc = &init["securityContext"];
        assert_eq!(sc["runAsUser"], DEFAULT_UID);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(init["resources"]["limits"]["memory"], "64Mi");
        let vols = out["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols[0]["emptyDir"]["medium"], "Memory");
        let sat = &vols[1]["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(sat["audience"], "vault");
        assert_eq!(sat["expirationSeconds"], 600);
        let app = &out["spec"]["containers"][0];
        let env = env_of(app);
        assert_eq!(env["AWS_SHARED_CREDENTIALS_FILE"], CREDENTIALS_FILE);
        assert_eq!(env["AWS_REGION"], "us-east-1");
        assert_eq!(
            app["volumeMounts"],
            json!([{"name": AWS_VOLUME, "mountPath": AWS_DIR, "readOnly": true}])
        );
    }

    #[test]
    fn spiffe_source_mounts_the_csi_socket_and_passes_no_vault_settings() {
        let (out, _) = mutate(&bare(json!({
            "iamra-bootstrap/role-arn": ROLE, "iamra-bootstrap/source": "spiffe"
        })));
        let init = &out["spec"]["initContainers"][0];
        let args = init["args"].as_array().unwrap();
        let at = args.iter().position(|a| a == "--spiffe-endpoint").unwrap();
        assert_eq!(args[at + 1], SPIFFE_ENDPOINT);
        for absent in [
            "--vault-addr",
            "--pki-role",
            "--vault-role",
            "--service-account-token-file",
        ] {
            assert!(!args.contains(&json!(absent)), "{absent}");
        }
        assert_eq!(
            init["volumeMounts"][1],
            json!({"name": SPIFFE_VOLUME, "mountPath": SPIFFE_DIR, "readOnly": true})
        );
        let vols = out["spec"]["volumes"].as_array().unwrap();
        assert_eq!(
            vols[1],
            json!({"name": SPIFFE_VOLUME, "csi": {"driver": "csi.spiffe.io", "readOnly": true}})
        );
        assert!(!vols.iter().any(|v| v["name"] == TOKEN_VOLUME));
    }

    #[test]
    fn sidecar_mode() {
        let (out, _) = mutate(&bare(json!({
            "iamra-bootstrap/role-arn": ROLE, "iamra-bootstrap/mode": "sidecar",
            "iamra-bootstrap/session-duration": "2h"
        })));
        let init = &out["spec"]["initContainers"][0];
        assert_eq!(init["restartPolicy"], "Always");
        let args = init["args"].as_array().unwrap();
        assert_eq!(args[0], "serve");
        assert!(args.contains(&json!("127.0.0.1:9911")));
        assert!(args.contains(&json!("0.0.0.0:9912")));
        assert!(args.contains(&json!("7200")));
        assert!(!args.contains(&json!("--credentials-file")));
        assert_eq!(init["startupProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(init["startupProbe"]["httpGet"]["port"], "iamra-health");
        assert_eq!(init["ports"][0]["containerPort"], 9912);
        let env = env_of(&out["spec"]["containers"][0]);
        assert_eq!(
            env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            "http://127.0.0.1:9911/v1/credentials"
        );
        assert_eq!(env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], TOKEN_FILE);
        assert!(!env.contains_key("AWS_SHARED_CREDENTIALS_FILE"));
    }

    fn deployment_pod() -> Value {
        json!({
            "metadata": {"generateName": "web-5f6d8-", "namespace": "shop",
                         "annotations": {"iamra-bootstrap/role-arn": ROLE,
                                         "iamra-bootstrap/containers": "worker"}},
            "spec": {
                "securityContext": {"runAsUser": 1000},
                "initContainers": [{"name": "migrate", "image": "m:1"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [
                    {"name": "web", "image": "w:1"},
                    {"name": "worker", "image": "k:1",
                     "env": [{"name": "AWS_REGION", "value": "eu-central-1"}, {"name": "X", "value": "1"}],
                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
                ]
            }
        })
    }

    #[test]
    fn existing_lists_are_appended_to_and_kept_env_is_warned_about() {
        let (out, m) = mutate(&deployment_pod());
        let inits = out["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(inits[0]["name"], CONTAINER);
        assert_eq!(inits[1]["name"], "migrate");
        assert_eq!(inits[0]["securityContext"]["runAsUser"], 1000);
        let vols: Vec<&str> = out["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(vols, ["data", AWS_VOLUME, TOKEN_VOLUME]);
        // only the named container
        assert!(out["spec"]["containers"][0].get("env").is_none());
        let worker = &out["spec"]["containers"][1];
        let env = env_of(worker);
        assert_eq!(env["AWS_REGION"], "eu-central-1");
        assert_eq!(env["X"], "1");
        assert_eq!(env["AWS_SHARED_CREDENTIALS_FILE"], CREDENTIALS_FILE);
        assert_eq!(worker["volumeMounts"].as_array().unwrap().len(), 2);
        assert_eq!(m.warnings.len(), 1);
        assert!(m.warnings[0].contains("AWS_REGION"), "{:?}", m.warnings);
        assert!(m.warnings[0].contains("worker"));
    }

    #[test]
    fn mutating_twice_is_mutating_once() {
        for v in [
            deployment_pod(),
            bare(json!({"iamra-bootstrap/role-arn": ROLE, "iamra-bootstrap/mode": "sidecar"})),
        ] {
            let (once, _) = mutate(&v);
            let p = pod(once.clone());
            let m = build(&p, &request(&p), &defaults()).unwrap();
            assert!(m.patch.0.is_empty(), "{:?}", m.patch);
        }
    }

    #[test]
    fn reinvocation_adds_the_environment_to_a_new_container_only() {
        let (mut once, _) = mutate(&bare(json!({"iamra-bootstrap/role-arn": ROLE})));
        once["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "added-later", "image": "x"}));
        let (twice, m) = mutate(&once);
        assert_eq!(twice["spec"]["initContainers"].as_array().unwrap().len(), 1);
        assert_eq!(
            env_of(&twice["spec"]["containers"][1])["AWS_SHARED_CREDENTIALS_FILE"],
            CREDENTIALS_FILE
        );
        assert!(
            m.patch
                .0
                .iter()
                .all(|op| op.path().to_string().starts_with("/spec/containers/1/"))
        );
    }

    #[test]
    fn uid_follows_agreeing_app_containers() {
        let mut v = bare(json!({"iamra-bootstrap/role-arn": ROLE}));
        v["spec"]["containers"] = json!([
            {"name": "a", "securityContext": {"runAsUser": 2000}},
            {"name": "b", "securityContext": {"runAsUser": 2000}}
        ]);
        let (out, _) = mutate(&v);
        assert_eq!(
            out["spec"]["initContainers"][0]["securityContext"]["runAsUser"],
            2000
        );
        v["spec"]["containers"][1]["securityContext"]["runAsUser"] = json!(3000);
        let (out, _) = mutate(&v);
        assert_eq!(
            out["spec"]["initContainers"][0]["securityContext"]["runAsUser"],
            DEFAULT_UID
        );
        // root apps: never root for us
        v["spec"]["containers"] = json!([{"name": "a", "securityContext": {"runAsUser": 0}}]);
        let (out, _) = mutate(&v);
        assert_eq!(
            out["spec"]["initContainers"][0]["securityContext"]["runAsUser"],
            DEFAULT_UID
        );
    }

    #[test]
    fn conflicts_are_errors() {
        let mut v = deployment_pod();
        v["metadata"]["annotations"]["iamra-bootstrap/containers"] = json!("worker, worker");
        let (out, _) = mutate(&v);
        assert_eq!(
            env_of(&out["spec"]["containers"][1]).len(),
            3,
            "named twice, set once"
        );
        v["metadata"]["annotations"]["iamra-bootstrap/containers"] = json!("nope");
        let p = pod(v);
        let e = build(&p, &request(&p), &defaults()).unwrap_err();
        assert!(
            e.0.contains("iamra-bootstrap/containers") && e.0.contains("nope"),
            "{e}"
        );
        let mut v = deployment_pod();
        v["spec"]["volumes"] = json!([{"name": AWS_VOLUME, "emptyDir": {}}]);
        let p = pod(v);
        assert!(build(&p, &request(&p), &defaults()).is_err());
    }

    /// The kubelet's expansion of `args` and `env` values, written from the Kubernetes docs
    /// ("Define Dependent Environment Variables") and `third_party/forked/golang/expansion`:
    /// `$$` is `$`; `$(NAME)` is the variable's value when it is defined, else left as it is;
    /// an unclosed `$(` and any other `$` stay.
    fn kubelet_expand(input: &str, vars: &BTreeMap<&str, &str>) -> String {
        let mut out = String::new();
        let mut rest = input;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(open) = after.strip_prefix('(') {
                match open.find(')') {
                    Some(end) => {
                        let name = &open[..end];
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&format!("$({name})")),
                        }
                        rest = &open[end + 1..];
                    }
                    None => {
                        out.push_str("$(");
                        rest = open;
                    }
                }
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        out
    }

    fn kubelet_vars() -> BTreeMap<&'static str, &'static str> {
        // What a container can see: a service link, and names a runtime would define.
        BTreeMap::from([
            ("HOME", "/root"),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("X", "x"),
        ])
    }

    #[test]
    fn the_expansion_model_expands() {
        // Without escaping, these are not what they were: the test below can fail.
        let vars = kubelet_vars();
        assert_eq!(kubelet_expand("$(HOME)", &vars), "/root");
        assert_eq!(kubelet_expand("a$$(HOME)b", &vars), "a$(HOME)b");
        assert_eq!(kubelet_expand("$(NOPE)$(X)$", &vars), "$(NOPE)x$");
        assert_eq!(kubelet_expand("$(HOME", &vars), "$(HOME");
        assert_eq!(kubelet_expand("$$$(X)$y", &vars), "$x$y");
    }

    #[test]
    fn copied_values_survive_the_kubelets_expansion() {
        let vars = kubelet_vars();
        for sa in [
            "$(HOME)",
            "$$(HOME)",
            "$$$(X)",
            "a$b$",
            "$(",
            "$(KUBERNETES_SERVICE_HOST)",
            "payments",
        ] {
            let mut v = bare(json!({"iamra-bootstrap/role-arn": ROLE}));
            v["spec"]["serviceAccountName"] = json!(sa);
            let (out, _) = mutate(&v);
            let init = &out["spec"]["initContainers"][0];
            let args: Vec<String> = init["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| kubelet_expand(a.as_str().unwrap(), &vars))
                .collect();
            let role = &args[args.iter().position(|a| a == "--vault-role").unwrap() + 1];
            assert_eq!(
                role, sa,
                "the ServiceAccount name, as the container sees it"
            );
            assert_eq!(args[0], "init");
            for (name, value) in env_of(&out["spec"]["containers"][0]) {
                let seen = kubelet_expand(&value, &vars);
                assert_eq!(seen, value, "{name} holds no $");
            }
        }
        // A default Vault role from the webhook's flags, too.
        let mut d = defaults();
        d.vault_role = Some("$(HOME)-role".into());
        let p = pod(bare(json!({"iamra-bootstrap/role-arn": ROLE})));
        let req = match parse(p.metadata.annotations.as_ref(), &d).unwrap() {
            Parsed::Inject(r) => *r,
            other => panic!("{other:?}"),
        };
        let out = apply(
            &bare(json!({"iamra-bootstrap/role-arn": ROLE})),
            &build(&p, &req, &d).unwrap(),
        );
        let args: Vec<&str> = out["spec"]["initContainers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let i = args.iter().position(|a| *a == "--vault-role").unwrap();
        assert_eq!(args[i + 1], "$$(HOME)-role");
        assert_eq!(kubelet_expand(args[i + 1], &vars), "$(HOME)-role");
    }

    proptest::proptest! {
        #[test]
        fn escaping_is_undone_by_the_expansion_exactly(s in "[$()A-Za-z_ é]{0,40}") {
            proptest::prop_assert_eq!(kubelet_expand(&kubelet_escape(&s), &kubelet_vars()), s);
        }
    }

    #[test]
    fn names_in_denials_and_warnings_are_quoted_and_bounded() {
        let long = "c".repeat(1 << 20);
        let mut v = deployment_pod();
        v["metadata"]["annotations"]["iamra-bootstrap/containers"] = json!(long);
        let p = pod(v);
        let e = build(&p, &request(&p), &defaults()).unwrap_err();
        assert!(
            e.0.len() < 400 && e.0.contains("(1048576 characters)"),
            "{e}"
        );
        let mut v = deployment_pod();
        v["spec"]["containers"][1]["name"] = json!(format!("worker\n{long}"));
        v["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("iamra-bootstrap/containers");
        let (_, m) = mutate(&v);
        assert_eq!(m.warnings.len(), 1);
        let w = &m.warnings[0];
        assert!(
            w.len() < 400 && !w.contains('\n') && w.contains("AWS_REGION"),
            "{w}"
        );
    }

    /// Reads `v` as the `k8s_openapi` type `T` and back: unknown or mistyped fields would be
    /// dropped or refused, so the JSON must come back the same.
    fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) {
        let typed: T = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("not a {}: {e}\n{v:#}", std::any::type_name::<T>()));
        assert_eq!(
            &serde_json::to_value(&typed).unwrap(),
            v,
            "{}",
            std::any::type_name::<T>()
        );
    }

    #[test]
    fn injected_objects_are_kubernetes_1_33_objects() {
        use k8s_openapi::api::core::v1::{Container, EnvVar, Volume, VolumeMount};
        for mode in ["init", "sidecar"] {
            let (out, _) = mutate(&bare(
                json!({"iamra-bootstrap/role-arn": ROLE, "iamra-bootstrap/mode": mode}),
            ));
            round_trips::<Container>(&out["spec"]["initContainers"][0]);
            for v in out["spec"]["volumes"].as_array().unwrap() {
                round_trips::<Volume>(v);
            }
            let app = &out["spec"]["containers"][0];
            for e in app["env"].as_array().unwrap() {
                round_trips::<EnvVar>(e);
            }
            for m in app["volumeMounts"].as_array().unwrap() {
                round_trips::<VolumeMount>(m);
            }
            round_trips::<Container>(app);
        }
    }

    #[test]
    fn patch_serializes_as_rfc6902() {
        let p = pod(bare(json!({"iamra-bootstrap/role-arn": ROLE})));
        let m = build(&p, &request(&p), &defaults()).unwrap();
        let v = serde_json::to_value(&m.patch).unwrap();
        assert_eq!(v[0]["op"], "add");
        assert_eq!(v[0]["path"], "/spec/initContainers");
    }
}
