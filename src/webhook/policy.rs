//! The operator's namespace policy (`webhook --namespace-policy FILE`, `IAMRA_NAMESPACE_POLICY`):
//! which role ARNs the pods of each namespace may ask for, and whether they may override the
//! webhook's Vault role, PKI role, profile and trust anchor. Modelled on kube2iam's namespace
//! annotation `iam.amazonaws.com/allowed-roles`, but kept in a file only the operator writes
//! (a namespace's own annotations are in its tenant's hands).
//!
//! ```json
//! {"namespaces": {
//!   "team-a": {"roleArns": ["arn:aws:iam::123456789012:role/team-a-*"], "allowOverrides": false},
//!   "*":      {"roleArns": [], "allowOverrides": false}}}
//! ```
//!
//! - `roleArns`: patterns a requested role ARN must match, `*` standing for any run of
//!   characters (nothing else is special); an empty list allows no role.
//! - `allowOverrides` (default `false`): whether the pod's annotations `vault-role`, `pki-role`,
//!   `profile-arn` and `trust-anchor-arn` may replace the webhook's defaults.
//! - A namespace not listed falls under `"*"`; with no `"*"` it is denied.
//!
//! JSON (the chart renders it with `toJson`), or the same in YAML: a file whose first character
//! that is not white space is `{` is read as JSON, any other as YAML (`serde_yaml_ng`, so the
//! JSON errors stay JSON's). Unknown fields are errors,
//! so a misspelt `roleArn` cannot silently allow nothing or everything. The file is read again
//! every [`POLL`](super::tls::POLL) when it changed; a file that no longer parses is logged
//! and the policy in force is kept.
//!
//! This is a guard rail, not the boundary: what a pod can really obtain is decided by Vault's
//! auth and PKI roles and the IAM role's trust policy (docs/security-model.md). It keeps a
//! tenant from asking for what it may not have, with a clear message, before the pod starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Deserialize;

use crate::limits::{MAX_POLICY_FILE, quote};

/// The annotations that override the webhook's defaults (kept in step with `annotations`).
pub(crate) const OVERRIDES: [&str; 4] = [
    "iamra-bootstrap/vault-role",
    "iamra-bootstrap/pki-role",
    "iamra-bootstrap/profile-arn",
    "iamra-bootstrap/trust-anchor-arn",
];

/// One namespace's rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Rule {
    /// Role ARN patterns (`*` wildcards).
    pub(crate) role_arns: Vec<String>,
    /// Whether the override annotations are honoured.
    #[serde(default)]
    pub(crate) allow_overrides: bool,
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespacePolicy {
    /// Namespace (or `*`) → rule.
    pub(crate) namespaces: BTreeMap<String, Rule>,
}

impl NamespacePolicy {
    /// Parses the JSON (or YAML) text; the error names what is wrong.
    pub(crate) fn parse(text: &[u8]) -> Result<NamespacePolicy, String> {
        let json = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let parsed = if json {
            serde_json::from_slice(text).map_err(|e| e.to_string())
        } else {
            serde_yaml_ng::from_slice(text).map_err(|e| format!("YAML: {e}"))
        };
        let p: NamespacePolicy = parsed.map_err(|e| {
            format!(
                "{} (expected {{\"namespaces\": {{\"<namespace or *>\": {{\"roleArns\": [\"arn:aws:iam::…:role/…\"], \"allowOverrides\": false}}}}}}, or the same in YAML)",
                crate::limits::remote_text(&e)
            )
        })?;
        for (ns, rule) in &p.namespaces {
            if let Some(bad) = rule
                .role_arns
                .iter()
                .find(|r| !r.starts_with("arn:") && r.as_str() != "*")
            {
                return Err(format!(
                    "namespace {}: roleArns entry {} is not a role ARN pattern (arn:aws:iam::<account>:role/<name>, '*' allowed)",
                    quote(ns),
                    quote(bad)
                ));
            }
        }
        Ok(p)
    }

    /// Whether a pod in `namespace` may ask for `role_arn`, with the override annotations it
    /// sets (`overrides`, a subset of [`OVERRIDES`]); the error is the denial message.
    pub(crate) fn check(
        &self,
        namespace: &str,
        role_arn: &str,
        overrides: &[&str],
    ) -> Result<(), String> {
        // The namespace and role come from the review: quoted and bounded.
        let (ns_q, role_q) = (quote(namespace), quote(role_arn));
        let Some(rule) = self
            .namespaces
            .get(namespace)
            .or_else(|| self.namespaces.get("*"))
        else {
            return Err(format!(
                "namespace {ns_q} is not in the webhook's namespace policy (no entry for it and no \"*\"), so its pods may not request role {role_q}; ask the cluster operator to add it"
            ));
        };
        if !rule.role_arns.iter().any(|p| glob_match(p, role_arn)) {
            return Err(format!(
                "the namespace policy does not allow namespace {ns_q} to request role {role_q} (allowed: {}); use a role the policy lists or ask the cluster operator",
                if rule.role_arns.is_empty() {
                    "none".to_string()
                } else {
                    rule.role_arns.join(", ")
                }
            ));
        }
        if !rule.allow_overrides
            && let Some(a) = overrides.first()
        {
            return Err(format!(
                "annotation {}: the namespace policy does not allow namespace {ns_q} to override the webhook's {} (allowOverrides is false); remove the annotation",
                quote(a),
                a.trim_start_matches("iamra-bootstrap/")
            ));
        }
        Ok(())
    }
}

/// `pattern` with `*` matching any run of characters (possibly empty) against all of `text`.
/// Hand-written: a dozen lines for one wildcard, where a glob crate would bring path rules
/// (`/`, `**`, classes) an ARN pattern must not have.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The policy file and the policy in force, re-read when the file changes.
#[derive(Debug)]
pub(crate) struct Watched {
    path: PathBuf,
    current: RwLock<(Vec<u8>, Arc<NamespacePolicy>)>,
}

/// Reads the file (bounded, within a few seconds).
fn read(path: &Path) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    crate::bounded::read_file(path, MAX_POLICY_FILE, deadline)
        .map_err(|e| format!("cannot read the namespace policy {}: {e}", path.display()))
}

impl Watched {
    /// Loads the policy; an unreadable or invalid file is an error naming it.
    pub(crate) fn load(path: &Path) -> Result<Watched, String> {
        let bytes = read(path)?;
        let policy = NamespacePolicy::parse(&bytes)
            .map_err(|e| format!("invalid namespace policy {}: {e}", path.display()))?;
        Ok(Watched {
            path: path.to_path_buf(),
            current: RwLock::new((bytes, Arc::new(policy))),
        })
    }

    /// The policy in force.
    pub(crate) fn current(&self) -> Arc<NamespacePolicy> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Reads the file again; loads it if it changed and parses (true), keeps the policy in
    /// force otherwise (an invalid file is logged).
    pub(crate) fn check(&self) -> bool {
        let bytes = match read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "namespace policy not reloaded; the previous one stays in force");
                return false;
            }
        };
        if self.current.read().unwrap_or_else(|p| p.into_inner()).0 == bytes {
            return false;
        }
        match NamespacePolicy::parse(&bytes) {
            Ok(p) => {
                tracing::info!(path = %self.path.display(), namespaces = p.namespaces.len(), "namespace policy reloaded");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (bytes, Arc::new(p));
                true
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "invalid namespace policy not loaded; the previous one stays in force");
                // Remember the bytes so the same bad file is not logged every poll.
                let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
                cur.0 = bytes;
                false
            }
        }
    }
}

/// Re-reads the policy every [`super::tls::POLL`] for as long as the webhook runs.
pub(crate) async fn watch(policy: Arc<Watched>) {
    let mut tick = tokio::time::interval(super::tls::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        policy.check();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE_A: &str = "arn:aws:iam::123456789012:role/team-a-reader";
    const ROLE_B: &str = "arn:aws:iam::123456789012:role/team-b-reader";

    fn policy(json: &str) -> NamespacePolicy {
        NamespacePolicy::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn glob_matches_stars_only() {
        assert!(glob_match(
            "arn:aws:iam::1:role/team-a-*",
            "arn:aws:iam::1:role/team-a-x"
        ));
        assert!(glob_match(
            "arn:aws:iam::1:role/team-a-*",
            "arn:aws:iam::1:role/team-a-"
        ));
        assert!(!glob_match(
            "arn:aws:iam::1:role/team-a-*",
            "arn:aws:iam::1:role/team-b-x"
        ));
        assert!(!glob_match(
            "arn:aws:iam::1:role/team-a",
            "arn:aws:iam::1:role/team-a-x"
        ));
        assert!(glob_match("arn:aws:iam::*:role/*-reader", ROLE_B));
        assert!(glob_match("*", ROLE_A));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(!glob_match(
            "arn:aws:iam::1:role/a?",
            "arn:aws:iam::1:role/ab"
        ));
    }

    #[test]
    fn listed_namespaces_their_roles_and_the_star_fallback() {
        let p = policy(
            r#"{"namespaces": {
                "team-a": {"roleArns": ["arn:aws:iam::123456789012:role/team-a-*"]},
                "*": {"roleArns": ["arn:aws:iam::123456789012:role/shared"], "allowOverrides": true}}}"#,
        );
        assert!(p.check("team-a", ROLE_A, &[]).is_ok());
        let e = p.check("team-a", ROLE_B, &[]).unwrap_err();
        assert!(
            e.contains("namespace \"team-a\"") && e.contains(&format!("\"{ROLE_B}\"")),
            "{e}"
        );
        let e = p
            .check("team-a", ROLE_A, &["iamra-bootstrap/pki-role"])
            .unwrap_err();
        assert!(
            e.starts_with("annotation \"iamra-bootstrap/pki-role\":") && e.contains("team-a"),
            "{e}"
        );
        // Not listed: the "*" rule, overrides allowed there.
        assert!(
            p.check("other", "arn:aws:iam::123456789012:role/shared", &OVERRIDES)
                .is_ok()
        );
        assert!(p.check("other", ROLE_A, &[]).is_err());
    }

    #[test]
    fn without_a_star_an_unlisted_namespace_is_denied() {
        let p = policy(r#"{"namespaces": {"team-a": {"roleArns": ["*"]}}}"#);
        let e = p.check("team-b", ROLE_B, &[]).unwrap_err();
        assert!(
            e.contains("namespace \"team-b\" is not in") && e.contains(ROLE_B),
            "{e}"
        );
        let none = policy(r#"{"namespaces": {"*": {"roleArns": []}}}"#);
        assert!(
            none.check("team-a", ROLE_A, &[])
                .unwrap_err()
                .contains("allowed: none")
        );
    }

    #[test]
    fn malformed_policies_are_refused_with_the_reason() {
        for (text, why) in [
            (
                r#"{"namespaces": {"a": {"roleArn": ["*"]}}}"#,
                "unknown field `roleArn`",
            ),
            (r#"{"namespace": {}}"#, "unknown field `namespace`"),
            (
                r#"{"namespaces": {"a": {"roleArns": ["team-a-*"]}}}"#,
                "not a role ARN pattern",
            ),
            (
                r#"{"namespaces": {"a": {"roleArns": "*"}}}"#,
                "invalid type",
            ),
            ("{namespaces: {}}", "key must be a string"),
            (
                "namespaces:\n  a:\n    roleArn: ['*']\n",
                "unknown field `roleArn`",
            ),
            ("namespaces: [a, b]\n", "YAML: namespaces: invalid type"),
            ("namespaces:\n  a: {roleArns: [\"x\"\n", "YAML:"),
        ] {
            let e = NamespacePolicy::parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn yaml_reads_as_the_same_policy_as_json() {
        let json = policy(
            r#"{"namespaces": {"team-a": {"roleArns": ["arn:aws:iam::123456789012:role/team-a-*"], "allowOverrides": true}, "*": {"roleArns": []}}}"#,
        );
        let yaml = NamespacePolicy::parse(
            b"# the operator's policy\nnamespaces:\n  team-a:\n    roleArns:\n      - arn:aws:iam::123456789012:role/team-a-*\n    allowOverrides: true\n  '*':\n    roleArns: []\n",
        )
        .unwrap();
        assert_eq!(json, yaml);
    }

    #[test]
    fn the_file_is_reloaded_when_it_changes_and_a_bad_one_is_not_loaded() {
        let dir = std::env::temp_dir().join(format!("iamra-nspolicy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.json");
        std::fs::write(&path, r#"{"namespaces": {"team-a": {"roleArns": ["*"]}}}"#).unwrap();
        let w = Watched::load(&path).unwrap();
        assert!(w.current().check("team-a", ROLE_A, &[]).is_ok());
        assert!(!w.check(), "unchanged");
        std::fs::write(&path, r#"{"namespaces": {"team-b": {"roleArns": ["*"]}}}"#).unwrap();
        assert!(w.check());
        assert!(w.current().check("team-a", ROLE_A, &[]).is_err());
        std::fs::write(&path, "{").unwrap();
        assert!(!w.check());
        assert!(w.current().check("team-b", ROLE_B, &[]).is_ok(), "kept");
        std::fs::write(&path, "{").unwrap();
        assert!(
            Watched::load(&path)
                .unwrap_err()
                .contains("invalid namespace policy")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
