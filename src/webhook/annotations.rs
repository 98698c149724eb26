//! The pod annotations the webhook reads (prefix `iamra-bootstrap/`), parsed and checked
//! against each other and the webhook's defaults.
//!
//! | annotation | meaning |
//! |---|---|
//! | `iamra-bootstrap/role-arn` | opt-in: the role to assume (required unless kube2iam's is there) |
//! | `iamra-bootstrap/mode` | `init` or `sidecar` (default `--default-mode`) |
//! | `iamra-bootstrap/profile-arn`, `trust-anchor-arn` | override the webhook's ARNs |
//! | `iamra-bootstrap/source` | `vault` or `spiffe` (default `--default-source`): where the certificate comes from |
//! | `iamra-bootstrap/vault-role`, `pki-role` | override the Vault auth and PKI roles (`vault` only) |
//! | `iamra-bootstrap/session-duration` | 900 to 43200 seconds (`3600`, `1h`, `90m`) |
//! | `iamra-bootstrap/containers` | comma-separated app containers that get the AWS environment |
//! | `iam.amazonaws.com/role` | kube2iam's; a full role ARN is taken as `role-arn` |
//!
//! A pod with neither `role-arn` nor a kube2iam role ARN is not ours ([`parse`] returns
//! `Ok(None)`); a kube2iam value that is a bare role name (kube2iam adds its own prefix) is left
//! alone with a warning. Any other problem is an [`AnnotationError`] naming the annotation.
//! Every value (and every annotation name that is not one of ours) in a denial or a warning goes
//! through [`crate::limits::quote`]: a 1 MB annotation is echoed as at most 96 characters.

use std::collections::BTreeMap;
use std::fmt;

use crate::arn::{Arn, ArnKind, Target};
use crate::limits::{
    MAX_ANNOTATION_ROLE_NAME_LEN, MAX_SESSION_DURATION, MIN_SESSION_DURATION, quote,
};

use super::{CertSource, Defaults, Mode};

/// The prefix of our annotations.
pub(crate) const PREFIX: &str = "iamra-bootstrap/";
/// kube2iam's role annotation.
pub(crate) const KUBE2IAM: &str = "iam.amazonaws.com/role";

const ROLE_ARN: &str = "iamra-bootstrap/role-arn";
const MODE: &str = "iamra-bootstrap/mode";
const PROFILE_ARN: &str = "iamra-bootstrap/profile-arn";
const TRUST_ANCHOR_ARN: &str = "iamra-bootstrap/trust-anchor-arn";
const VAULT_ROLE: &str = "iamra-bootstrap/vault-role";
const PKI_ROLE: &str = "iamra-bootstrap/pki-role";
const SESSION_DURATION: &str = "iamra-bootstrap/session-duration";
const CONTAINERS: &str = "iamra-bootstrap/containers";
const SOURCE: &str = "iamra-bootstrap/source";

/// Every annotation under [`PREFIX`] we know; another one is a typo we refuse.
const KNOWN: [&str; 9] = [
    ROLE_ARN,
    MODE,
    PROFILE_ARN,
    TRUST_ANCHOR_ARN,
    VAULT_ROLE,
    PKI_ROLE,
    SESSION_DURATION,
    CONTAINERS,
    SOURCE,
];

/// What a pod asks for: the webhook's defaults with its annotations applied, all checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `init` or `sidecar`.
    pub(crate) mode: Mode,
    /// Trust anchor, profile and role, checked against each other (region, partition).
    pub(crate) target: Target,
    /// Where the certificate comes from.
    pub(crate) source: CertSource,
    /// Vault auth role; `None`: the pod's ServiceAccount name.
    pub(crate) vault_role: Option<String>,
    /// Vault PKI role (`None` for SPIFFE).
    pub(crate) pki_role: Option<String>,
    /// `--session-duration` for the injected container, when the pod sets one.
    pub(crate) session_duration: Option<u32>,
    /// The app containers named by `iamra-bootstrap/containers` (`None`: all of them).
    pub(crate) containers: Option<Vec<String>>,
}

/// An annotation that cannot be used; the pod is denied with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnnotationError {
    /// The annotation's key.
    pub(crate) annotation: String,
    /// What is wrong and what to do.
    pub(crate) reason: String,
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ours are named as they are; another (a typo, or anything a pod sets) is quoted.
        if KNOWN.contains(&self.annotation.as_str()) || self.annotation == KUBE2IAM {
            write!(f, "annotation {}: {}", self.annotation, self.reason)
        } else {
            write!(f, "annotation {}: {}", quote(&self.annotation), self.reason)
        }
    }
}

impl std::error::Error for AnnotationError {}

fn bad(annotation: &str, reason: impl Into<String>) -> AnnotationError {
    AnnotationError {
        annotation: annotation.to_string(),
        reason: reason.into(),
    }
}

/// The outcome for one pod's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not opted in: allow unchanged.
    NotOurs,
    /// Not opted in, with a warning for the user (a kube2iam role name we cannot use).
    Skipped(String),
    /// Inject this.
    Inject(Box<Request>),
}

/// `3600`, `3600s`, `90m` or `12h` as seconds (one unit: an annotation, not a flag).
fn seconds(v: &str) -> Option<u64> {
    let (num, unit) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1),
        (i, 'm') => (&v[..i], 60),
        (i, 'h') => (&v[..i], 3600),
        _ => (v, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(unit)
}

/// Reads the pod's annotations against the webhook's defaults.
pub(crate) fn parse(
    annotations: Option<&BTreeMap<String, String>>,
    defaults: &Defaults,
) -> Result<Parsed, AnnotationError> {
    let empty = BTreeMap::new();
    let ann = annotations.unwrap_or(&empty);
    let get = |k: &str| ann.get(k).map(|v| v.trim());

    let ours: Vec<&String> = ann.keys().filter(|k| k.starts_with(PREFIX)).collect();
    if let Some(unknown) = ours.iter().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(
            unknown,
            format!(
                "unknown annotation; the known ones are {}",
                KNOWN
                    .iter()
                    .map(|k| k.trim_start_matches(PREFIX))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    let (role_key, role_value) = match (get(ROLE_ARN), get(KUBE2IAM)) {
        (Some(v), _) => (ROLE_ARN, v),
        (None, Some(v)) if v.starts_with("arn:") => (KUBE2IAM, v),
        (None, Some(v)) => {
            if !ours.is_empty() {
                return Err(bad(
                    ROLE_ARN,
                    format!(
                        "missing; {KUBE2IAM} {} is a role name, not a full role ARN: set {ROLE_ARN} to arn:aws:iam::ACCOUNT:role/NAME",
                        quote(v)
                    ),
                ));
            }
            return Ok(Parsed::Skipped(format!(
                "iamra-bootstrap: {KUBE2IAM} {} is not a full role ARN; not injected (set {ROLE_ARN})",
                quote(v)
            )));
        }
        (None, None) if ours.is_empty() => return Ok(Parsed::NotOurs),
        (None, None) => {
            return Err(bad(
                ROLE_ARN,
                format!(
                    "missing, but {} is set: add {ROLE_ARN}: arn:aws:iam::ACCOUNT:role/NAME",
                    quote(ours[0])
                ),
            ));
        }
    };

    let arn = |key: &str, kind: ArnKind, value: &str| {
        Arn::parse(kind, value).map_err(|e| {
            let shape = match kind {
                ArnKind::TrustAnchor => "arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID",
                ArnKind::Profile => "arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID",
                ArnKind::Role => "arn:aws:iam::ACCOUNT:role/NAME",
            };
            bad(
                key,
                format!(
                    "invalid ARN {}: {}; expected {shape}",
                    quote(value),
                    e.reason
                ),
            )
        })
    };
    let role = arn(role_key, ArnKind::Role, role_value)?;
    let trust_anchor = match get(TRUST_ANCHOR_ARN) {
        Some(v) => arn(TRUST_ANCHOR_ARN, ArnKind::TrustAnchor, v)?,
        None => defaults.trust_anchor.clone(),
    };
    let profile = match get(PROFILE_ARN) {
        Some(v) => arn(PROFILE_ARN, ArnKind::Profile, v)?,
        None => defaults.profile.clone(),
    };
    // Name the annotation most likely at fault: the one the pod set.
    let blame = [PROFILE_ARN, TRUST_ANCHOR_ARN]
        .into_iter()
        .find(|k| ann.contains_key(*k))
        .unwrap_or(role_key);
    let target =
        Target::new(trust_anchor, profile, role, None).map_err(|e| bad(blame, e.to_string()))?;

    let mode = match get(MODE) {
        None => defaults.mode,
        Some("init") => Mode::Init,
        Some("sidecar") => Mode::Sidecar,
        Some(v) => {
            return Err(bad(
                MODE,
                format!("unknown mode {}; use init or sidecar", quote(v)),
            ));
        }
    };

    let source = match get(SOURCE) {
        None => defaults.source,
        Some("vault") => CertSource::Vault,
        Some("spiffe") => CertSource::Spiffe,
        Some(v) => {
            return Err(bad(
                SOURCE,
                format!("unknown source {}; use vault or spiffe", quote(v)),
            ));
        }
    };

    let name = |key: &str, v: &str| {
        if v.is_empty()
            || v.len() > MAX_ANNOTATION_ROLE_NAME_LEN
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
        {
            Err(bad(
                key,
                format!(
                    "invalid role name {}: 1-{MAX_ANNOTATION_ROLE_NAME_LEN} letters, digits, '-', '_', '.' or '@'",
                    quote(v)
                ),
            ))
        } else {
            Ok(v.to_string())
        }
    };
    let (vault_role, pki_role) = match source {
        CertSource::Spiffe => {
            if let Some(key) = [VAULT_ROLE, PKI_ROLE]
                .into_iter()
                .find(|k| get(k).is_some())
            {
                return Err(bad(
                    key,
                    "applies to the Vault source only; this pod takes its certificate from SPIFFE (iamra-bootstrap/source)",
                ));
            }
            (None, None)
        }
        CertSource::Vault => {
            if defaults.vault_addr.is_none() {
                return Err(bad(
                    SOURCE,
                    "the webhook has no Vault settings (--vault-addr, --pki-role): annotate iamra-bootstrap/source: spiffe, or give the webhook its Vault settings",
                ));
            }
            let vault_role = match get(VAULT_ROLE) {
                Some(v) => Some(name(VAULT_ROLE, v)?),
                None => defaults.vault_role.clone(),
            };
            let pki_role = match (get(PKI_ROLE), &defaults.pki_role) {
                (Some(v), _) => name(PKI_ROLE, v)?,
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    return Err(bad(
                        PKI_ROLE,
                        "missing: the webhook has no default PKI role (--pki-role); annotate the pod's",
                    ));
                }
            };
            (vault_role, Some(pki_role))
        }
    };

    let session_duration = match get(SESSION_DURATION) {
        None => None,
        Some(v) => {
            let secs = seconds(v).ok_or_else(|| {
                bad(
                    SESSION_DURATION,
                    format!(
                        "invalid duration {}: use seconds (3600) or 15m to 12h (1h, 90m)",
                        quote(v)
                    ),
                )
            })?;
            if !(u64::from(MIN_SESSION_DURATION)..=u64::from(MAX_SESSION_DURATION)).contains(&secs)
            {
                return Err(bad(
                    SESSION_DURATION,
                    format!(
                        "{} is out of range: use {MIN_SESSION_DURATION} to {MAX_SESSION_DURATION} seconds (15m to 12h)",
                        quote(v)
                    ),
                ));
            }
            Some(secs as u32)
        }
    };

    let containers = match get(CONTAINERS) {
        None => None,
        Some(v) => {
            let names: Vec<String> = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if names.is_empty() {
                return Err(bad(
                    CONTAINERS,
                    "empty; name one or more app containers, comma-separated",
                ));
            }
            Some(names)
        }
    };

    Ok(Parsed::Inject(Box::new(Request {
        mode,
        target,
        source,
        vault_role,
        pki_role,
        session_duration,
        containers,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::tests::defaults;

    const ROLE: &str = "arn:aws:iam::123456789012:role/payments";

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(pairs: &[(&str, &str)]) -> Request {
        match parse(Some(&ann(pairs)), &defaults()).unwrap() {
            Parsed::Inject(r) => *r,
            other => panic!("not injected: {other:?}"),
        }
    }

    fn err(pairs: &[(&str, &str)]) -> AnnotationError {
        parse(Some(&ann(pairs)), &defaults()).unwrap_err()
    }

    #[test]
    fn no_annotations_is_not_ours() {
        assert_eq!(parse(None, &defaults()).unwrap(), Parsed::NotOurs);
        assert_eq!(
            parse(Some(&ann(&[("app", "x")])), &defaults()).unwrap(),
            Parsed::NotOurs
        );
    }

    #[test]
    fn role_arn_takes_the_defaults() {
        let r = req(&[(ROLE_ARN, ROLE)]);
        assert_eq!(r.mode, Mode::Init);
        assert_eq!(r.target.role.raw, ROLE);
        assert_eq!(r.target.region, "us-east-1");
        assert_eq!(r.pki_role.as_deref(), Some("workload"));
        assert_eq!(r.vault_role, None);
        assert_eq!(r.containers, None);
    }

    #[test]
    fn kube2iam_full_arn_is_a_role_arn_and_a_bare_name_is_skipped() {
        assert_eq!(req(&[(KUBE2IAM, ROLE)]).target.role.raw, ROLE);
        assert!(matches!(
            parse(Some(&ann(&[(KUBE2IAM, "payments")])), &defaults()).unwrap(),
            Parsed::Skipped(w) if w.contains("payments")
        ));
        // ours wins over kube2iam's
        let other = "arn:aws:iam::123456789012:role/other";
        assert_eq!(
            req(&[(ROLE_ARN, ROLE), (KUBE2IAM, other)]).target.role.raw,
            ROLE
        );
    }

    #[test]
    fn overrides() {
        let r = req(&[
            (ROLE_ARN, ROLE),
            (MODE, "sidecar"),
            (VAULT_ROLE, "payments-api"),
            (PKI_ROLE, "other"),
            (SESSION_DURATION, "2h"),
            (CONTAINERS, "app, worker"),
        ]);
        assert_eq!(r.mode, Mode::Sidecar);
        assert_eq!(r.vault_role.as_deref(), Some("payments-api"));
        assert_eq!(r.pki_role.as_deref(), Some("other"));
        assert_eq!(r.session_duration, Some(7200));
        assert_eq!(r.containers, Some(vec!["app".into(), "worker".into()]));
        for (v, secs) in [("900", 900), ("900s", 900), ("90m", 5400), ("12h", 43200)] {
            assert_eq!(
                req(&[(ROLE_ARN, ROLE), (SESSION_DURATION, v)]).session_duration,
                Some(secs),
                "{v}"
            );
        }
    }

    #[test]
    fn errors_name_the_annotation() {
        let e = err(&[(ROLE_ARN, "arn:aws:iam::12:role/x")]);
        assert_eq!(e.annotation, ROLE_ARN);
        assert!(
            e.to_string()
                .starts_with("annotation iamra-bootstrap/role-arn: invalid ARN")
        );
        assert_eq!(err(&[(ROLE_ARN, ROLE), (MODE, "daemon")]).annotation, MODE);
        for d in [
            "899",
            "12h1s",
            "13h",
            "soon",
            "0",
            "",
            "h",
            "-1h",
            "1.5h",
            "99999999999999999999h",
        ] {
            let e = err(&[(ROLE_ARN, ROLE), (SESSION_DURATION, d)]);
            assert_eq!(e.annotation, SESSION_DURATION, "{d}");
        }
        assert_eq!(
            err(&[
                (ROLE_ARN, ROLE),
                (
                    PROFILE_ARN,
                    "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/x"
                )
            ])
            .annotation,
            PROFILE_ARN
        );
        assert_eq!(
            err(&[(ROLE_ARN, ROLE), (VAULT_ROLE, "a b")]).annotation,
            VAULT_ROLE
        );
        assert_eq!(
            err(&[(ROLE_ARN, ROLE), (CONTAINERS, " , ")]).annotation,
            CONTAINERS
        );
        let e = err(&[(ROLE_ARN, ROLE), ("iamra-bootstrap/role", "x")]);
        assert_eq!(e.annotation, "iamra-bootstrap/role");
        assert!(e.reason.contains("role-arn"));
        assert_eq!(err(&[(MODE, "init")]).annotation, ROLE_ARN);
        assert_eq!(
            err(&[(MODE, "init"), (KUBE2IAM, "bare")]).annotation,
            ROLE_ARN
        );
        assert_eq!(
            err(&[(KUBE2IAM, "arn:aws:iam::1:role/x")]).annotation,
            KUBE2IAM
        );
    }
}
