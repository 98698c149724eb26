//! Amazon Resource Names for Roles Anywhere, and the CreateSession endpoint they imply.
//!
//! Contract (`docs/rolesanywhere-protocol.md` §1):
//! - trust anchor: `arn:<partition>:rolesanywhere:<region>:<account>:trust-anchor/<id>`
//! - profile:      `arn:<partition>:rolesanywhere:<region>:<account>:profile/<id>`
//! - role:         `arn:<partition>:iam::<account>:role/<path/><name>`
//! - the region is `--region`, else the trust anchor's; trust anchor and profile must agree.
//! - lengths are AWS's own: IAM role ARNs at most 2048 characters, the role name 1-64 of
//!   `[A-Za-z0-9+=,.@_-]`, its path at most 512; trust anchor and profile ARNs at most 1011
//!   (`AmazonResourceName`), their ids 1-64 (`[A-Za-z0-9-]`, a UUID in practice); nothing is
//!   trimmed (a trailing newline is an error), and an error quotes at most a short prefix of the
//!   value ([`crate::limits::quote`]).
//! - the endpoint is `https://rolesanywhere.<region>.<dns suffix of the partition>` (or its FIPS
//!   or dual-stack form, [`crate::endpoints`]), unless `--endpoint` or a configured endpoint
//!   (`AWS_ENDPOINT_URL_ROLESANYWHERE`, `AWS_ENDPOINT_URL`, ...) names another (plain http
//!   allowed, a path prefix is kept and signed as sent).

use std::fmt;

use crate::limits::{
    MAX_ROLE_ARN_LEN, MAX_ROLE_NAME_LEN, MAX_ROLE_PATH_LEN, MAX_ROLESANYWHERE_ARN_LEN,
    MAX_ROLESANYWHERE_ID_LEN, quote,
};

/// A parsed ARN, with the parts this tool uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arn {
    pub(crate) raw: String,
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub(crate) partition: String,
    /// The region (empty for IAM).
    pub(crate) region: String,
    /// The 12-digit account id.
    pub(crate) account: String,
}

/// Which of the three ARNs an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArnKind {
    /// `--trust-anchor-arn`
    TrustAnchor,
    /// `--profile-arn`
    Profile,
    /// `--role-arn`
    Role,
}

impl fmt::Display for ArnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArnKind::TrustAnchor => "trust anchor ARN (--trust-anchor-arn)",
            ArnKind::Profile => "profile ARN (--profile-arn)",
            ArnKind::Role => "role ARN (--role-arn)",
        })
    }
}

/// An ARN that is malformed or of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArnError {
    pub(crate) kind: ArnKind,
    pub(crate) value: String,
    /// What is wrong with it.
    pub(crate) reason: String,
}

impl fmt::Display for ArnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected = match self.kind {
            ArnKind::TrustAnchor => "arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID",
            ArnKind::Profile => "arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID",
            ArnKind::Role => "arn:aws:iam::ACCOUNT:role/NAME",
        };
        write!(
            f,
            "invalid {} {}: {}; expected {}",
            self.kind,
            crate::limits::quote(&self.value),
            self.reason,
            expected
        )
    }
}

impl std::error::Error for ArnError {}

impl Arn {
    /// Parses and validates an ARN of the given kind.
    pub(crate) fn parse(kind: ArnKind, value: &str) -> Result<Arn, ArnError> {
        let err = |reason: &str| ArnError {
            kind,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if value.is_empty() {
            return Err(err("it is empty"));
        }
        let max = match kind {
            ArnKind::Role => MAX_ROLE_ARN_LEN,
            ArnKind::TrustAnchor | ArnKind::Profile => MAX_ROLESANYWHERE_ARN_LEN,
        };
        if value.len() > max {
            return Err(err(&format!(
                "it is {} characters long; AWS allows at most {max}",
                value.chars().count()
            )));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(
                "it contains whitespace or control characters (a trailing newline from a file?)",
            ));
        }
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(err(
                "not of the form arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE",
            ));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if dns_suffix(partition).is_none() {
            return Err(err(&format!("unknown partition {}", quote(partition))));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the account id must be 12 digits"));
        }
        let (want_service, prefix) = match kind {
            ArnKind::TrustAnchor => ("rolesanywhere", "trust-anchor/"),
            ArnKind::Profile => ("rolesanywhere", "profile/"),
            ArnKind::Role => ("iam", "role/"),
        };
        if service != want_service {
            return Err(err(&format!(
                "the service is {}, not {want_service:?}",
                quote(service)
            )));
        }
        match kind {
            ArnKind::Role if !region.is_empty() => {
                return Err(err("IAM role ARNs have no region"));
            }
            ArnKind::TrustAnchor | ArnKind::Profile if !valid_region(region) => {
                return Err(err(&format!("{} is not a region name", quote(region))));
            }
            _ => {}
        }
        let id = resource
            .strip_prefix(prefix)
            .ok_or_else(|| err(&format!("the resource must start with {prefix:?}")))?;
        let id_ok = !id.is_empty()
            && !id.ends_with('/')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/+=,.@".contains(&b));
        if !id_ok {
            return Err(err(
                "the resource id is empty or has characters ARNs do not allow",
            ));
        }
        match kind {
            ArnKind::Role => {
                // role/<path/>name: the path is "/" plus everything up to the last slash.
                let (path, name) = id.rsplit_once('/').unwrap_or(("", id));
                if name.len() > MAX_ROLE_NAME_LEN {
                    return Err(err(&format!(
                        "the role name is {} characters long; IAM allows at most {MAX_ROLE_NAME_LEN}",
                        name.len()
                    )));
                }
                if path.len() + 2 > MAX_ROLE_PATH_LEN {
                    return Err(err(&format!(
                        "the role path is {} characters long; IAM allows at most {MAX_ROLE_PATH_LEN}",
                        path.len() + 2
                    )));
                }
            }
            ArnKind::TrustAnchor | ArnKind::Profile => {
                if id.len() > MAX_ROLESANYWHERE_ID_LEN
                    || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(err(&format!(
                        "the id must be 1-{MAX_ROLESANYWHERE_ID_LEN} letters, digits and dashes (a UUID)"
                    )));
                }
            }
        }
        Ok(Arn {
            raw: value.to_string(),
            partition: partition.to_string(),
            region: region.to_string(),
            account: account.to_string(),
        })
    }
}

fn valid_region(region: &str) -> bool {
    let mut parts = region.split('-');
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && parts.clone().count() >= 3
        && parts.next_back().is_some_and(|n| n.parse::<u8>().is_ok())
}

/// The DNS suffix of a partition's regional endpoints ([`crate::endpoints::PARTITIONS`]).
pub(crate) fn dns_suffix(partition: &str) -> Option<&'static str> {
    crate::endpoints::partition(partition).map(|p| p.dns_suffix)
}

/// The three ARNs, checked against each other, and the region they resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) trust_anchor: Arn,
    pub(crate) profile: Arn,
    pub(crate) role: Arn,
    /// The signing region: `--region`, else the trust anchor's.
    pub(crate) region: String,
}

/// A region or partition conflict between the ARNs and `--region`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegionMismatch(pub String);

impl fmt::Display for RegionMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Target {
    /// Checks that trust anchor and profile share region and partition, the role shares the
    /// partition, and `--region` (when given) agrees with the trust anchor.
    pub(crate) fn new(
        trust_anchor: Arn,
        profile: Arn,
        role: Arn,
        region: Option<&str>,
    ) -> Result<Target, RegionMismatch> {
        if trust_anchor.region != profile.region {
            return Err(RegionMismatch(format!(
                "region mismatch: the trust anchor ARN is in {} but the profile ARN is in {}; both must be in the same region",
                trust_anchor.region, profile.region
            )));
        }
        for arn in [&profile, &role] {
            if arn.partition != trust_anchor.partition {
                return Err(RegionMismatch(format!(
                    "partition mismatch: {} is in partition {} but the trust anchor is in {}",
                    arn.raw, arn.partition, trust_anchor.partition
                )));
            }
        }
        let region = match region {
            Some(r) if r != trust_anchor.region => {
                return Err(RegionMismatch(format!(
                    "region mismatch: --region {r} differs from the trust anchor's region {}; drop --region or use ARNs from {r}",
                    trust_anchor.region
                )));
            }
            _ => trust_anchor.region.clone(),
        };
        Ok(Target {
            trust_anchor,
            profile,
            role,
            region,
        })
    }

    /// `https://rolesanywhere.<region>.<suffix>` for this target's partition.
    #[cfg(test)]
    pub(crate) fn default_endpoint(&self) -> String {
        self.endpoint(
            crate::endpoints::Service::RolesAnywhere,
            &crate::endpoints::EndpointSettings::default(),
        )
        .expect("no configured endpoint to conflict with")
    }

    /// The URL of `service` for this target's region and partition under `settings` (FIPS,
    /// dual-stack, configured endpoints; [`crate::endpoints`]).
    pub(crate) fn endpoint(
        &self,
        service: crate::endpoints::Service,
        settings: &crate::endpoints::EndpointSettings,
    ) -> Result<String, crate::endpoints::EndpointError> {
        let partition = crate::endpoints::partition(&self.trust_anchor.partition)
            .unwrap_or_else(|| crate::endpoints::partition_of_region(&self.region));
        settings.url(service, &self.region, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555";
    const PR: &str =
        "arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000";
    const ROLE: &str = "arn:aws:iam::123456789012:role/ExampleRole";

    fn target(ta: &str, pr: &str, role: &str, region: Option<&str>) -> Result<Target, String> {
        let ta = Arn::parse(ArnKind::TrustAnchor, ta).map_err(|e| e.to_string())?;
        let pr = Arn::parse(ArnKind::Profile, pr).map_err(|e| e.to_string())?;
        let role = Arn::parse(ArnKind::Role, role).map_err(|e| e.to_string())?;
        Target::new(ta, pr, role, region).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_three_arns() {
        let t = target(TA, PR, ROLE, None).unwrap();
        assert_eq!(t.region, "us-east-1");
        assert_eq!(
            t.default_endpoint(),
            "https://rolesanywhere.us-east-1.amazonaws.com"
        );
        assert!(Arn::parse(ArnKind::Role, "arn:aws:iam::123456789012:role/path/to/Name").is_ok());
    }

    #[test]
    fn partitions_pick_the_dns_suffix() {
        let t = target(
            "arn:aws-cn:rolesanywhere:cn-north-1:123456789012:trust-anchor/a",
            "arn:aws-cn:rolesanywhere:cn-north-1:123456789012:profile/b",
            "arn:aws-cn:iam::123456789012:role/R",
            None,
        )
        .unwrap();
        assert_eq!(
            t.default_endpoint(),
            "https://rolesanywhere.cn-north-1.amazonaws.com.cn"
        );
        let t = target(
            "arn:aws-us-gov:rolesanywhere:us-gov-west-1:123456789012:trust-anchor/a",
            "arn:aws-us-gov:rolesanywhere:us-gov-west-1:123456789012:profile/b",
            "arn:aws-us-gov:iam::123456789012:role/R",
            None,
        )
        .unwrap();
        assert_eq!(
            t.default_endpoint(),
            "https://rolesanywhere.us-gov-west-1.amazonaws.com"
        );
    }

    #[test]
    fn bad_arns_name_the_flag() {
        for (kind, bad, flag) in [
            (
                ArnKind::TrustAnchor,
                "arn:aws:rolesanywhere:us-east-1:123456789012:profile/x",
                "trust anchor ARN",
            ),
            (ArnKind::Profile, "nonsense", "profile ARN"),
            (
                ArnKind::Role,
                "arn:aws:iam:us-east-1:123456789012:role/R",
                "role ARN",
            ),
            (ArnKind::Role, "arn:aws:iam::12345:role/R", "role ARN"),
            (
                ArnKind::TrustAnchor,
                "arn:aws:rolesanywhere:useast:123456789012:trust-anchor/x",
                "trust anchor ARN",
            ),
            (
                ArnKind::Profile,
                "arn:aws:rolesanywhere:us-east-1:123456789012:profile/",
                "profile ARN",
            ),
            (
                ArnKind::Role,
                "arn:aws-mars:iam::123456789012:role/R",
                "role ARN",
            ),
        ] {
            let e = Arn::parse(kind, bad).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn aws_length_limits_and_no_trimming() {
        let name64 = "r".repeat(64);
        assert!(
            Arn::parse(
                ArnKind::Role,
                &format!("arn:aws:iam::123456789012:role/{name64}")
            )
            .is_ok()
        );
        for (bad, why) in [
            (
                format!("arn:aws:iam::123456789012:role/{name64}x"),
                "role name is 65",
            ),
            (
                format!("arn:aws:iam::123456789012:role/{}/R", "p".repeat(511)),
                "role path is 513",
            ),
            (
                format!("arn:aws:iam::123456789012:role/{}", "a/".repeat(1100) + "R"),
                "at most 2048",
            ),
            (format!("{ROLE}\n"), "whitespace or control"),
            (format!(" {ROLE}"), "whitespace or control"),
        ] {
            let e = Arn::parse(ArnKind::Role, &bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert!(e.len() < 400, "{} characters: {e}", e.len());
        }
        let e = Arn::parse(ArnKind::Profile, &format!("{PR}{}", "0".repeat(1000)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 1011") && e.len() < 400, "{e}");
        let e = Arn::parse(ArnKind::TrustAnchor, &TA.replace("11111111-", "1111_1111-"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("letters, digits and dashes"), "{e}");
        let huge = format!("arn:aws:iam::123456789012:role/{}", "a".repeat(120_000));
        let e = Arn::parse(ArnKind::Role, &huge).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains("120031 characters"), "{e}");
    }

    /// Found by `fuzz/fuzz_targets/arn.rs`: parts of a value were echoed unquoted in the
    /// reason (a 1,090-byte line for a 1,000-byte partition of U+FFFD).
    #[test]
    fn every_part_of_an_error_line_is_short() {
        let crash = include_bytes!("../fuzz/corpus/arn/crash-long-partition");
        let text = String::from_utf8_lossy(crash);
        for kind in [ArnKind::TrustAnchor, ArnKind::Profile, ArnKind::Role] {
            let e = Arn::parse(kind, &text).unwrap_err().to_string();
            assert!(e.len() < 1024, "{} bytes: {e}", e.len());
        }
        let controls = format!("arn:{}:iam::123456789012:role/R", "\u{1}".repeat(900));
        let e = Arn::parse(ArnKind::Role, &controls)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 1024, "{} bytes: {e}", e.len());
    }

    #[test]
    fn regions_must_agree() {
        let e = target(TA, &PR.replace("us-east-1", "eu-west-1"), ROLE, None).unwrap_err();
        assert!(e.contains("region mismatch"), "{e}");
        let e = target(TA, PR, ROLE, Some("eu-west-1")).unwrap_err();
        assert!(e.contains("--region eu-west-1"), "{e}");
        assert!(target(TA, PR, ROLE, Some("us-east-1")).is_ok());
        let e = target(TA, PR, "arn:aws-cn:iam::123456789012:role/R", None).unwrap_err();
        assert!(e.contains("partition"), "{e}");
    }
}
