//! `--verify`: STS `GetCallerIdentity` with the new credentials, signed with plain SigV4 by
//! `aws-sigv4` (the one place an ordinary access-key signature fits).
//!
//! Contract: `POST <endpoint>/` with `Action=GetCallerIdentity&Version=2011-06-15`
//! (form-encoded); the XML answer's `<Arn>` and `<Account>` are reported. Endpoint:
//! `--sts-endpoint`, else `https://sts.<region>.<dns suffix>`. The response is read with two
//! substring look-ups rather than an XML parser: only two leaf elements of a fixed document
//! are needed.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::credentials::Credentials;
use crate::limits::MAX_STS_BODY;

const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Who the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallerIdentity {
    pub(crate) arn: String,
    pub(crate) account: String,
}

/// Calls GetCallerIdentity at `endpoint` (a URL) for `region`.
pub(crate) async fn get_caller_identity(
    http: &reqwest::Client,
    endpoint: &str,
    region: &str,
    creds: &Credentials,
    deadline: std::time::Instant,
) -> Result<CallerIdentity, String> {
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().to_string(),
        Some(creds.session_token.expose().to_string()),
        None,
        "iamra-bootstrap",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let headers = [("content-type", CONTENT_TYPE)];
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(BODY.as_bytes()),
    )
    .map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("SigV4 signing: {e}"))?
        .into_parts();
    let mut rb = http
        .post(&url)
        .header("content-type", CONTENT_TYPE)
        .body(BODY);
    for (name, value) in instructions.headers() {
        rb = rb.header(name, value);
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| format!("STS at {url}: {}", crate::http::describe(&e)))?;
    let status = resp.status();
    let body = crate::bounded::read_body(resp, MAX_STS_BODY, deadline)
        .await
        .map_err(|e| format!("STS at {url}: {e}"))?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        let code = element(&text, "Code").unwrap_or_default();
        let msg = element(&text, "Message").unwrap_or_default();
        return Err(format!(
            "STS GetCallerIdentity at {url} failed: HTTP {} {}",
            status.as_u16(),
            crate::limits::remote_text(&format!("{code} {msg}"))
        ));
    }
    match (element(&text, "Arn"), element(&text, "Account")) {
        (Some(arn), Some(account)) => Ok(CallerIdentity { arn, account }),
        _ => Err(format!(
            "STS GetCallerIdentity at {url}: no Arn/Account in the answer"
        )),
    }
}

/// The text of the first `<name>…</name>`.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arn_and_account() {
        let xml = "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/R/s</Arn><UserId>X</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(
            element(xml, "Arn").unwrap(),
            "arn:aws:sts::123456789012:assumed-role/R/s"
        );
        assert_eq!(element(xml, "Account").unwrap(), "123456789012");
        assert!(element(xml, "Nope").is_none());
    }
}
