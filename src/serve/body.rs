//! The credentials documents of the ECS endpoint and of IMDS: one shape, IMDS adding
//! `Code`, `LastUpdated` and `Type` in front (`docs/ecosystem-contracts.md` §3–4).

use serde::Serialize;
use time::OffsetDateTime;

use crate::credentials::Credentials;
use crate::timefmt::{self, Style};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_updated: Option<String>,
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    /// `Token`, not `SessionToken`.
    token: &'a str,
    expiration: String,
}

fn render(c: &Credentials, imds_updated: Option<OffsetDateTime>) -> String {
    serde_json::to_string(&Body {
        code: imds_updated.map(|_| "Success"),
        last_updated: imds_updated.map(|t| timefmt::format(t, Style::Rfc3339)),
        kind: imds_updated.map(|_| "AWS-HMAC"),
        access_key_id: &c.access_key_id,
        secret_access_key: c.secret_access_key.expose(),
        token: c.session_token.expose(),
        expiration: c.expiration_rfc3339(),
    })
    .expect("serialising strings")
}

/// `{"AccessKeyId","SecretAccessKey","Token","Expiration"}`.
pub(crate) fn ecs(c: &Credentials) -> String {
    render(c, None)
}

/// `{"Code":"Success","LastUpdated","Type":"AWS-HMAC", …the ECS fields}`.
pub(crate) fn imds(c: &Credentials, last_updated: OffsetDateTime) -> String {
    render(c, Some(last_updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_shapes() {
        let c = crate::credentials::fixture(time::macros::datetime!(2025-12-11 16:34:25 UTC));
        assert_eq!(
            ecs(&c),
            r#"{"AccessKeyId":"ASIA1","SecretAccessKey":"sk","Token":"st","Expiration":"2025-12-11T16:34:25Z"}"#
        );
        assert_eq!(
            imds(&c, time::macros::datetime!(2025-12-11 15:34:25 UTC)),
            r#"{"Code":"Success","LastUpdated":"2025-12-11T15:34:25Z","Type":"AWS-HMAC","AccessKeyId":"ASIA1","SecretAccessKey":"sk","Token":"st","Expiration":"2025-12-11T16:34:25Z"}"#
        );
    }
}
