//! The Roles Anywhere flags ([`RolesAnywhereArgs`], with the legacy `ANCHOR_ARN`, `PROFILE_ARN`,
//! `ROLE_ARN` fallbacks) as [`crate::rolesanywhere::Settings`], and the endpoints the AWS SDKs'
//! conventions resolve (Roles Anywhere, and STS for `init --verify`).

use super::{ConfigError, Env, err};
use crate::arn::{Arn, ArnKind, Target};
use crate::cli::RolesAnywhereArgs;
use crate::endpoints::{EndpointSettings, Service};
use crate::limits::{self, MAX_SESSION_DURATION, MIN_SESSION_DURATION};
use crate::rolesanywhere::Settings;
use crate::rolesanywhere::sign::{Endpoint, SessionParams};

fn required(flag: &str, value: Option<String>, envs: &str) -> Result<String, ConfigError> {
    value.ok_or_else(|| ConfigError(format!("missing {flag}: pass it or set {envs}")))
}

/// The Roles Anywhere flags, validated.
pub(super) fn settings(a: &RolesAnywhereArgs, env: &dyn Env) -> Result<Settings, ConfigError> {
    let ta = required(
        "--trust-anchor-arn",
        a.trust_anchor_arn.clone().or_else(|| env.var("ANCHOR_ARN")),
        "IAMRA_TRUST_ANCHOR_ARN (or ANCHOR_ARN)",
    )?;
    let pr = required(
        "--profile-arn",
        a.profile_arn.clone().or_else(|| env.var("PROFILE_ARN")),
        "IAMRA_PROFILE_ARN (or PROFILE_ARN)",
    )?;
    let role = required(
        "--role-arn",
        a.role_arn.clone().or_else(|| env.var("ROLE_ARN")),
        "IAMRA_ROLE_ARN (or ROLE_ARN)",
    )?;
    let arn = |k, v: &str| Arn::parse(k, v).map_err(|e| ConfigError(e.to_string()));
    let target = Target::new(
        arn(ArnKind::TrustAnchor, &ta)?,
        arn(ArnKind::Profile, &pr)?,
        arn(ArnKind::Role, &role)?,
        a.region.as_deref(),
    )
    .map_err(|e| ConfigError(e.to_string()))?;
    if !(MIN_SESSION_DURATION..=MAX_SESSION_DURATION).contains(&a.session_duration) {
        return err(format!(
            "--session-duration {} is out of range: it must be between {MIN_SESSION_DURATION} and {MAX_SESSION_DURATION} seconds",
            a.session_duration
        ));
    }
    let endpoint_raw = match &a.endpoint {
        Some(e) => e.clone(),
        None => target
            .endpoint(Service::RolesAnywhere, &endpoints(env)?)
            .map_err(|e| ConfigError(e.0))?,
    };
    let endpoint = Endpoint::parse(&endpoint_raw).map_err(ConfigError)?;
    if let Some(n) = &a.role_session_name {
        limits::check_role_session_name(n).map_err(ConfigError)?;
    }
    Ok(Settings {
        target,
        endpoint,
        params: SessionParams {
            duration_seconds: a.session_duration,
            role_session_name: a.role_session_name.clone(),
        },
        no_verify_ssl: a.no_verify_ssl,
        with_proxy: a.with_proxy,
        debug: a.debug,
    })
}

/// FIPS, dual-stack and configured endpoints from the environment and the shared config file,
/// as the AWS SDKs read them ([`crate::endpoints`]).
fn endpoints(env: &dyn Env) -> Result<EndpointSettings, ConfigError> {
    EndpointSettings::from_env(&|name| env.var(name)).map_err(|e| ConfigError(e.0))
}

/// The STS endpoint of `init --verify`: `--sts-endpoint`, else resolved as the SDKs do.
pub(super) fn sts_endpoint(
    flag: Option<&str>,
    target: &Target,
    env: &dyn Env,
) -> Result<String, ConfigError> {
    match flag {
        Some(url) => Ok(url.to_string()),
        None => target
            .endpoint(Service::Sts, &endpoints(env)?)
            .map_err(|e| ConfigError(e.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a";
    const PR: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/b";
    const ROLE: &str = "arn:aws:iam::123456789012:role/R";

    #[test]
    fn legacy_env_names_are_fallbacks() {
        let a = RolesAnywhereArgs {
            session_duration: 3600,
            ..Default::default()
        };
        let e = env(&[("ANCHOR_ARN", TA), ("PROFILE_ARN", PR), ("ROLE_ARN", ROLE)]);
        let c = settings(&a, &e).unwrap();
        assert_eq!(c.target.role.raw, ROLE);
        assert_eq!(c.endpoint.host, "rolesanywhere.us-east-1.amazonaws.com");
        let a = RolesAnywhereArgs {
            role_arn: Some("arn:aws:iam::123456789012:role/Flag".into()),
            ..a
        };
        assert_eq!(
            settings(&a, &e).unwrap().target.role.raw,
            "arn:aws:iam::123456789012:role/Flag"
        );
    }

    #[test]
    fn missing_and_out_of_range() {
        let a = RolesAnywhereArgs {
            session_duration: 3600,
            ..Default::default()
        };
        let e = settings(&a, &env(&[])).unwrap_err().0;
        assert!(e.contains("--trust-anchor-arn"), "{e}");
        let all = env(&[("ANCHOR_ARN", TA), ("PROFILE_ARN", PR), ("ROLE_ARN", ROLE)]);
        for d in [899, 43201] {
            let a = RolesAnywhereArgs {
                session_duration: d,
                ..Default::default()
            };
            let e = settings(&a, &all).unwrap_err().0;
            assert!(e.contains("between 900 and 43200"), "{e}");
        }
        let a = RolesAnywhereArgs {
            session_duration: 3600,
            ..Default::default()
        };
        let mut e2 = all.clone();
        e2.insert(
            "AWS_ENDPOINT_URL_ROLESANYWHERE".into(),
            "http://127.0.0.1:9/p".into(),
        );
        assert_eq!(settings(&a, &e2).unwrap().endpoint.path, "/p/sessions");
    }
}
