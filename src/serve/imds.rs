//! IMDSv2 emulation (`docs/ecosystem-contracts.md` §4), for tools that only know instance
//! metadata. Opt-in (`--imds`): any local process can get an IMDS token, so the ECS endpoint
//! with its token file is the better contract.
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1–21600) → a token
//!   (any other method there is `405` with `Allow: PUT`),
//!   with the granted TTL in the same response header, as real IMDS does (the Rust and Go SDKs
//!   require it); requests carrying `X-Forwarded-For` are refused (403), as real IMDS does.
//!   The grant is at most [`MAX_GRANTED_TTL`] (60 s), whatever was asked for: tokens die with
//!   the process (below), and the AWS SDK for Rust keeps a token until 2 minutes before the TTL
//!   it was granted and retries a 401 with that same token (aws-config 1.13
//!   `imds/client/token.rs` `TOKEN_REFRESH_BUFFER`, `imds/client.rs` `classify_retry`), so after
//!   a sidecar restart it would never get credentials again and would sign with its last,
//!   expired ones. With a grant under 2 minutes it asks for a new token every time. The other
//!   SDKs are unaffected: botocore and the JavaScript SDK ask for a token at every credentials
//!   fetch, Go v2 caches it for the granted TTL and drops it on a 401.
//! - `GET /latest/meta-data/iam/security-credentials/` → the role name;
//! - `GET /latest/meta-data/iam/security-credentials/<role>` →
//!   `{"Code":"Success","LastUpdated","Type":"AWS-HMAC","AccessKeyId","SecretAccessKey","Token","Expiration"}`.
//!
//! Every other path takes only GET (`405` with `Allow: GET` otherwise) and needs a live token in `X-aws-ec2-metadata-token` (401 otherwise). Tokens are not
//! kept anywhere: a token is its expiry (on this process's monotonic clock) and an HMAC of it
//! under a key made at start-up, so no client can crowd out another's token, and a restart
//! invalidates them all (SDKs then fetch a new one within [`MAX_GRANTED_TTL`]).

use std::time::{Duration, Instant};

use http::request::Parts;
use http::{Method, StatusCode};
use ring::hmac;

use super::{State, body};
use crate::server::Reply;

/// The request and response header that carries the TTL.
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// The longest TTL a client may ask for (real IMDS: 6 hours).
const MAX_TTL: u64 = 21_600;
/// The longest TTL granted (see the module docs).
pub(crate) const MAX_GRANTED_TTL: u64 = 60;
/// How many bytes of the HMAC a token carries.
const MAC_LEN: usize = 16;

/// Issues and checks IMDS session tokens.
#[derive(Debug)]
pub(crate) struct Tokens {
    key: hmac::Key,
    epoch: Instant,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .expect("system RNG"),
            epoch: Instant::now(),
        }
    }
}

impl Tokens {
    /// A token valid for `ttl` seconds from `now`: 16 hex digits of the expiry (ms since
    /// start-up), then the hex HMAC.
    fn issue(&self, ttl: u64, now: Instant) -> String {
        let expiry = (now + Duration::from_secs(ttl)).duration_since(self.epoch);
        let stamp = format!("{:016x}", expiry.as_millis() as u64);
        let tag = hmac::sign(&self.key, stamp.as_bytes());
        format!("{stamp}{}", hex::encode(&tag.as_ref()[..MAC_LEN]))
    }

    /// Whether `token` is one of ours and live at `now`.
    fn valid(&self, token: &str, now: Instant) -> bool {
        if token.len() != 16 + 2 * MAC_LEN || !token.is_ascii() {
            return false;
        }
        let (stamp, mac) = token.split_at(16);
        let Ok(expiry_ms) = u64::from_str_radix(stamp, 16) else {
            return false;
        };
        let Ok(mac) = hex::decode(mac) else {
            return false;
        };
        let expected = hmac::sign(&self.key, stamp.as_bytes());
        let authentic = bool::from(subtle::ConstantTimeEq::ct_eq(
            &expected.as_ref()[..MAC_LEN],
            mac.as_slice(),
        ));
        authentic && now.duration_since(self.epoch) < Duration::from_millis(expiry_ms)
    }
}

/// Serves everything under `/latest/`.
pub(crate) fn handle(req: &Parts, s: &State) -> Reply {
    let Some(tokens) = &s.imds else {
        return Reply::text(StatusCode::NOT_FOUND, "IMDS emulation is off (--imds)\n");
    };
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let now = Instant::now();
    let path = req.uri.path();
    if path == "/latest/api/token" {
        if req.method != Method::PUT {
            // A GET here is a client that skipped the token step: say so, not "no token".
            return Reply::method_not_allowed("PUT");
        }
        if req.headers.contains_key("x-forwarded-for") {
            return Reply::text(StatusCode::FORBIDDEN, "forwarded requests are refused\n");
        }
        let ttl = header(TTL_HEADER).and_then(|v| v.trim().parse::<u64>().ok());
        return match ttl {
            Some(ttl) if (1..=MAX_TTL).contains(&ttl) => {
                let granted = ttl.min(MAX_GRANTED_TTL);
                Reply::text(StatusCode::OK, tokens.issue(granted, now))
                    .with_header(TTL_HEADER, granted.to_string())
            }
            _ => Reply::text(
                StatusCode::BAD_REQUEST,
                "X-aws-ec2-metadata-token-ttl-seconds must be 1-21600\n",
            ),
        };
    }
    if req.method != Method::GET {
        return Reply::method_not_allowed("GET");
    }
    if !header(TOKEN_HEADER).is_some_and(|t| tokens.valid(t, now)) {
        return Reply::text(
            StatusCode::UNAUTHORIZED,
            "missing or expired IMDSv2 token\n",
        );
    }
    const CREDS: &str = "/latest/meta-data/iam/security-credentials/";
    match path.strip_prefix(CREDS) {
        Some("") => Reply::text(StatusCode::OK, s.role_name.clone()),
        Some(role) if role.trim_end_matches('/') == s.role_name => match s.valid() {
            Some(c) => Reply::text(StatusCode::OK, body::imds(&c.creds, c.updated)),
            None => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "no valid credentials\n"),
        },
        _ => Reply::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::tests::{state, with_creds};

    fn req(method: Method, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn put(headers: &[(&str, &str)]) -> Reply {
        handle(
            &req(Method::PUT, "/latest/api/token", headers),
            &state(None, true),
        )
    }

    #[test]
    fn token_ttl_is_checked_and_echoed() {
        for bad in [
            &[][..],
            &[(TTL_HEADER, "0")],
            &[(TTL_HEADER, "21601")],
            &[(TTL_HEADER, "x")],
        ] {
            assert_eq!(put(bad).status, StatusCode::BAD_REQUEST);
        }
        let r = put(&[(TTL_HEADER, "21600")]);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.len(), 48);
        // The token path with the wrong method says which one it takes.
        for m in [Method::GET, Method::POST] {
            let r = handle(
                &req(m.clone(), "/latest/api/token", &[(TTL_HEADER, "60")]),
                &state(None, true),
            );
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
            assert_eq!(r.headers, vec![("allow", "PUT".to_string())], "{m}");
        }
    }

    #[test]
    fn the_grant_is_capped_and_is_what_the_header_says() {
        let t = Tokens::default();
        let s = state(None, true);
        for (asked, granted) in [("1", 1), ("59", 59), ("60", 60), ("61", 60), ("21600", 60)] {
            let r = handle(
                &req(Method::PUT, "/latest/api/token", &[(TTL_HEADER, asked)]),
                &s,
            );
            assert_eq!(r.status, StatusCode::OK, "{asked}");
            assert_eq!(
                r.headers,
                vec![(TTL_HEADER, granted.to_string())],
                "{asked}"
            );
        }
        // Below the Rust SDK's 2-minute token refresh buffer, so it never reuses a token.
        const { assert!(MAX_GRANTED_TTL < 120) };
        // A token lives exactly as long as the header says.
        let now = Instant::now();
        let tok = t.issue(MAX_GRANTED_TTL, now);
        let ttl = Duration::from_secs(MAX_GRANTED_TTL);
        assert!(t.valid(&tok, now + ttl - Duration::from_millis(1)));
        assert!(!t.valid(&tok, now + ttl));
    }

    #[test]
    fn forwarded_token_requests_are_refused() {
        let r = put(&[(TTL_HEADER, "60"), ("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn tokens_expire_and_cannot_be_forged_or_crowded_out() {
        let t = Tokens::default();
        let now = Instant::now();
        let tok = t.issue(60, now);
        assert!(t.valid(&tok, now));
        assert!(t.valid(&tok, now + Duration::from_secs(59)));
        assert!(!t.valid(&tok, now + Duration::from_secs(60)));
        // Any number of other tokens leaves this one valid: nothing is stored.
        for _ in 0..5000 {
            t.issue(1, now);
        }
        assert!(t.valid(&tok, now));
        // Another process's token, a changed expiry, garbage: refused.
        assert!(!Tokens::default().valid(&tok, now));
        let forged = format!("{:016x}{}", u64::MAX, &tok[16..]);
        assert!(!t.valid(&forged, now));
        assert!(!t.valid("bogus", now));
        assert!(!t.valid(&"é".repeat(24), now));
    }

    #[test]
    fn credentials_need_a_live_token() {
        let s = state(None, true);
        let tok = handle(
            &req(Method::PUT, "/latest/api/token", &[(TTL_HEADER, "60")]),
            &s,
        )
        .body_text();
        let list = "/latest/meta-data/iam/security-credentials/";
        let get = |path: &str, token: Option<&str>| {
            let h: Vec<(&str, &str)> = token.map(|t| (TOKEN_HEADER, t)).into_iter().collect();
            handle(&req(Method::GET, path, &h), &s)
        };
        assert_eq!(get(list, None).status, StatusCode::UNAUTHORIZED);
        assert_eq!(get(list, Some("bogus")).status, StatusCode::UNAUTHORIZED);
        let r = get(list, Some(&tok));
        assert_eq!((r.status, r.body_text().as_str()), (StatusCode::OK, "R"));
        let role = format!("{list}R");
        assert_eq!(
            get(&role, Some(&tok)).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        with_creds(&s, 600);
        let r = get(&role, Some(&tok));
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.body_text()
                .starts_with(r#"{"Code":"Success","LastUpdated":"#),
            "{}",
            r.body_text()
        );
        assert_eq!(
            get(&format!("{list}Other"), Some(&tok)).status,
            StatusCode::NOT_FOUND
        );
        let post = handle(&req(Method::POST, list, &[]), &s);
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers, vec![("allow", "GET".to_string())]);
        let off = state(None, false);
        assert_eq!(
            handle(&req(Method::GET, list, &[]), &off).status,
            StatusCode::NOT_FOUND
        );
    }
}
