//! The ECS container-credentials endpoint (`docs/ecosystem-contracts.md` §3).
//!
//! `GET /v1/credentials` with `Authorization: <token>` (the exact content of
//! `--auth-token-file`, which SDKs read through `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) →
//! `200 {"AccessKeyId","SecretAccessKey","Token","Expiration"}`. A missing or wrong token is
//! `401`/`403`; no valid credentials is `503`; errors are `{"code":"…","message":"…"}`. The
//! token is 32 random bytes in hex, written 0600 with no trailing newline (SDKs reject CR/LF).

use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::aws::credentials::Credentials;

/// The body SDKs expect (`Token`, not `SessionToken`).
pub fn body(c: &Credentials) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body<'a> {
        access_key_id: &'a str,
        secret_access_key: &'a str,
        token: &'a str,
        expiration: String,
    }
    serde_json::to_string(&Body {
        access_key_id: &c.access_key_id,
        secret_access_key: c.secret_access_key.expose(),
        token: c.session_token.expose(),
        expiration: c.expiration_rfc3339(),
    })
    .expect("serialising strings")
}

/// An error body.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"code": code, "message": message}).to_string()
}

/// A new random authorization token (64 hex characters).
pub fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system RNG");
    hex::encode(b)
}

/// Whether the presented header matches the token, in constant time.
pub fn authorized(presented: Option<&[u8]>, token: &str) -> bool {
    match presented {
        Some(p) => bool::from(p.ct_eq(token.as_bytes())),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn shape_and_auth() {
        let c = Credentials {
            access_key_id: "ASIA1".into(),
            secret_access_key: Secret::new("sk"),
            session_token: Secret::new("st"),
            expiration: time::macros::datetime!(2025-12-11 16:34:25 UTC),
        };
        assert_eq!(
            body(&c),
            r#"{"AccessKeyId":"ASIA1","SecretAccessKey":"sk","Token":"st","Expiration":"2025-12-11T16:34:25Z"}"#
        );
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert!(authorized(Some(t.as_bytes()), &t));
        assert!(!authorized(Some(b"nope"), &t));
        assert!(!authorized(None, &t));
        assert_ne!(new_token(), t);
    }
}
