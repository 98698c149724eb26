//! The `credential_process` output (`docs/ecosystem-contracts.md` §2):
//! `{"Version":1,"AccessKeyId":"…","SecretAccessKey":"…","SessionToken":"…","Expiration":"…"}`,
//! `Version` the integer 1, `Expiration` RFC 3339, printed with no trailing newline. The cache
//! stores the same document.

use serde::{Deserialize, Serialize};

use crate::credentials::Credentials;
use crate::secret::Secret;
use crate::timefmt::parse_rfc3339;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessJson<'a> {
    version: u8,
    access_key_id: std::borrow::Cow<'a, str>,
    secret_access_key: std::borrow::Cow<'a, str>,
    session_token: std::borrow::Cow<'a, str>,
    expiration: String,
}

/// Renders credentials as credential_process JSON.
pub(crate) fn to_json(c: &Credentials) -> String {
    serde_json::to_string(&ProcessJson {
        version: 1,
        access_key_id: c.access_key_id.as_str().into(),
        secret_access_key: c.secret_access_key.expose().into(),
        session_token: c.session_token.expose().into(),
        expiration: c.expiration_rfc3339(),
    })
    .expect("serialising strings")
}

/// Reads credential_process JSON back (the cache); `None` if it is not that shape.
pub(crate) fn from_json(s: &[u8]) -> Option<Credentials> {
    let p: ProcessJson<'_> = serde_json::from_slice(s).ok()?;
    if p.version != 1 {
        return None;
    }
    Some(Credentials {
        access_key_id: p.access_key_id.into_owned(),
        secret_access_key: Secret::new(p.secret_access_key.into_owned()),
        session_token: Secret::new(p.session_token.into_owned()),
        expiration: parse_rfc3339(&p.expiration)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_shape_and_round_trip() {
        let c = crate::credentials::fixture(time::macros::datetime!(2025-12-11 16:34:25 UTC));
        let j = to_json(&c);
        assert_eq!(
            j,
            r#"{"Version":1,"AccessKeyId":"ASIA1","SecretAccessKey":"sk","SessionToken":"st","Expiration":"2025-12-11T16:34:25Z"}"#
        );
        assert_eq!(from_json(j.as_bytes()).unwrap(), c);
        assert!(from_json(b"{}").is_none());
    }
}
