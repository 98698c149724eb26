//! IMDSv2 emulation (`docs/ecosystem-contracts.md` §4), for tools that only know instance
//! metadata. Opt-in (`--imds`): any local process can get an IMDS token, so the ECS endpoint
//! with its token file is the better contract.
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1–21600) → a token;
//!   requests carrying `X-Forwarded-For` are refused, as real IMDS does.
//! - `GET /latest/meta-data/iam/security-credentials/` → the role name;
//! - `GET /latest/meta-data/iam/security-credentials/<role>` →
//!   `{"Code":"Success","LastUpdated","Type":"AWS-HMAC","AccessKeyId","SecretAccessKey","Token","Expiration"}`.
//!
//! Every GET needs a live token in `X-aws-ec2-metadata-token` (401 otherwise).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::credentials::{Credentials, rfc3339};

/// The most tokens kept at once; the oldest are dropped first.
const MAX_TOKENS: usize = 1024;

/// Issued IMDS session tokens.
#[derive(Debug, Default)]
pub struct Tokens(Mutex<HashMap<String, Instant>>);

impl Tokens {
    /// Issues a token valid for `ttl_header` seconds; `None` if the TTL is missing or out of range.
    pub fn issue(&self, ttl_header: Option<&str>) -> Option<String> {
        let ttl: u64 = ttl_header?.trim().parse().ok()?;
        if !(1..=21600).contains(&ttl) {
            return None;
        }
        let token = super::ecs::new_token();
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, exp| *exp > now);
        if map.len() >= MAX_TOKENS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(token.clone(), now + Duration::from_secs(ttl));
        Some(token)
    }

    /// Whether `token` is live.
    pub fn valid(&self, token: Option<&str>) -> bool {
        let Some(t) = token else { return false };
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(t).is_some_and(|exp| *exp > Instant::now())
    }
}

/// The credentials document.
pub fn credentials_body(c: &Credentials, last_updated: time::OffsetDateTime) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body<'a> {
        code: &'a str,
        last_updated: String,
        r#type: &'a str,
        access_key_id: &'a str,
        secret_access_key: &'a str,
        token: &'a str,
        expiration: String,
    }
    serde_json::to_string(&Body {
        code: "Success",
        last_updated: rfc3339(last_updated),
        r#type: "AWS-HMAC",
        access_key_id: &c.access_key_id,
        secret_access_key: c.secret_access_key.expose(),
        token: c.session_token.expose(),
        expiration: c.expiration_rfc3339(),
    })
    .expect("serialising strings")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_need_a_valid_ttl() {
        let t = Tokens::default();
        assert!(t.issue(None).is_none());
        assert!(t.issue(Some("0")).is_none());
        assert!(t.issue(Some("21601")).is_none());
        let tok = t.issue(Some("60")).unwrap();
        assert!(t.valid(Some(&tok)));
        assert!(!t.valid(Some("other")));
        assert!(!t.valid(None));
    }
}
