//! The X.509 variant of SigV4 for `CreateSession`: canonical request, string to sign and the
//! `Authorization` header, as pure functions of their inputs.
//!
//! Contract (`docs/rolesanywhere-protocol.md` §2–3, checked byte for byte against the
//! known-answer vectors in `tests/data/kat/`):
//!
//! ```text
//! POST\n<path>\n<canonical query>\n
//! content-type:application/json\nhost:<host>\nx-amz-date:<date>\nx-amz-x509:<b64>\n[x-amz-x509-chain:<b64>,<b64>\n]
//! \n<signed headers>\n<hex sha256(body)>
//! ```
//! String to sign: `<algorithm>\n<date>\n<yyyymmdd>/<region>/rolesanywhere/aws4_request\n<hex sha256(canonical request)>`.
//! `Authorization: <algorithm> Credential=<decimal serial>/<scope>, SignedHeaders=<names>, Signature=<hex>`.
//!
//! Written by hand: `aws-sigv4` signs only with HMAC keys derived from a secret access key, not
//! with an X.509 private key, and exposes no canonical-request builder to reuse.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::digest;

/// The service name in the credential scope.
pub(crate) const SERVICE: &str = "rolesanywhere";

/// RFC 3986 unreserved characters stay; everything else is `%XX` with upper-case hex.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query key or value as SigV4 requires.
pub(crate) fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// `k=v&k=v` with keys (then values) sorted and both encoded; empty for no parameters.
pub(crate) fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// Everything that goes into the canonical request, as it will be sent.
#[derive(Debug, Clone)]
pub(crate) struct RequestParts<'a> {
    /// The request path, exactly as sent (`/sessions`, or `/prefix/sessions`).
    pub(crate) path: &'a str,
    /// The canonical query string (see [`canonical_query`]); also what is sent.
    pub(crate) query: &'a str,
    /// The `Host` header value, with `:port` when one is sent.
    pub(crate) host: &'a str,
    /// `X-Amz-Date`, `YYYYMMDDTHHMMSSZ`.
    pub(crate) amz_date: &'a str,
    /// `X-Amz-X509`: the leaf DER in standard base64.
    pub(crate) x509: &'a str,
    /// `X-Amz-X509-Chain`: the intermediates, comma-joined, when there are any.
    pub(crate) x509_chain: Option<&'a str>,
    /// The exact body bytes.
    pub(crate) body: &'a [u8],
}

/// The content type sent and signed.
pub(crate) const CONTENT_TYPE: &str = "application/json";

impl RequestParts<'_> {
    /// The header names signed, `;`-joined.
    pub(crate) fn signed_headers(&self) -> &'static str {
        if self.x509_chain.is_some() {
            "content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain"
        } else {
            "content-type;host;x-amz-date;x-amz-x509"
        }
    }

    /// The canonical request (no trailing newline).
    pub(crate) fn canonical_request(&self) -> String {
        let mut headers = format!(
            "content-type:{CONTENT_TYPE}\nhost:{}\nx-amz-date:{}\nx-amz-x509:{}\n",
            trim_header(self.host),
            self.amz_date,
            self.x509
        );
        if let Some(chain) = self.x509_chain {
            headers.push_str(&format!("x-amz-x509-chain:{chain}\n"));
        }
        format!(
            "POST\n{}\n{}\n{}\n{}\n{}",
            self.path,
            self.query,
            headers,
            self.signed_headers(),
            sha256_hex(self.body)
        )
    }
}

/// Header values are trimmed and inner runs of spaces collapsed.
fn trim_header(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `<yyyymmdd>/<region>/rolesanywhere/aws4_request` for an `X-Amz-Date`.
pub(crate) fn scope(amz_date: &str, region: &str) -> String {
    format!("{}/{region}/{SERVICE}/aws4_request", &amz_date[..8])
}

/// The string to sign (no trailing newline).
pub(crate) fn string_to_sign(
    algorithm: &str,
    amz_date: &str,
    scope: &str,
    canonical: &str,
) -> String {
    format!(
        "{algorithm}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

/// The `Authorization` header value.
pub(crate) fn authorization(
    algorithm: &str,
    serial_decimal: &str,
    scope: &str,
    signed_headers: &str,
    signature: &[u8],
) -> String {
    format!(
        "{algorithm} Credential={serial_decimal}/{scope}, SignedHeaders={signed_headers}, Signature={}",
        hex::encode(signature)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_sorted_and_rfc3986_encoded() {
        assert_eq!(
            canonical_query(&[("roleArn", "arn:aws:iam::1:role/a b~"), ("a", "x")]),
            "a=x&roleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b~"
        );
        assert_eq!(canonical_query(&[]), "");
    }

    #[test]
    fn scope_format() {
        assert_eq!(
            scope("20240102T030405Z", "us-east-1"),
            "20240102/us-east-1/rolesanywhere/aws4_request"
        );
    }

    #[test]
    fn header_values_are_trimmed() {
        assert_eq!(trim_header("  a   b  "), "a b");
    }
}
