//! Builds a signed `CreateSession` request: URL, headers and body, ready to send.
//!
//! The three ARNs go in the query, as the reference helper sends them; the body is
//! `{"durationSeconds":N}` plus `"roleSessionName"` when one is given. Headers signed:
//! `content-type;host;x-amz-date;x-amz-x509[;x-amz-x509-chain]`, and no other `x-amz-*` is sent.

use serde::Serialize;
use time::OffsetDateTime;

use super::canonical::{self, CONTENT_TYPE, RequestParts};
use crate::arn::Target;
use crate::material::Identity;
use crate::timefmt::{self, Style};

/// Where CreateSession is sent: scheme, host, optional port and optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://host[:port]` without a path.
    pub(crate) origin: String,
    /// The `Host` header: host, plus `:port` when the URL names one.
    pub(crate) host: String,
    /// The request path: the prefix, then `/sessions`.
    pub(crate) path: String,
}

impl Endpoint {
    /// Parses `--endpoint` (or the default endpoint). Accepts `https://` and `http://` URLs
    /// with an optional port and path prefix; no query or fragment.
    pub(crate) fn parse(raw: &str) -> Result<Endpoint, String> {
        let shown = crate::limits::quote(raw);
        let url = url::Url::parse(raw).map_err(|e| {
            format!("invalid endpoint {shown}: {e}; expected https://HOST[:PORT][/PREFIX]")
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!(
                "invalid endpoint {shown}: the scheme must be https (or http for tests)"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("invalid endpoint {shown}: no host"))?;
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "invalid endpoint {shown}: no query, fragment or user info allowed"
            ));
        }
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let prefix = url.path().trim_end_matches('/');
        Ok(Endpoint {
            origin: format!("{}://{host}", url.scheme()),
            path: format!("{prefix}/sessions"),
            host,
        })
    }

    /// The CreateSession URL without its query: origin, then path.
    pub(crate) fn sessions_url(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }
}

/// What the caller asks of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionParams {
    /// `durationSeconds`, already checked to be in 900..=43200.
    pub(crate) duration_seconds: u32,
    /// `roleSessionName`, when given.
    pub(crate) role_session_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    duration_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_session_name: Option<&'a str>,
}

/// A request ready for the wire, plus what `--debug` shows.
#[derive(Debug, Clone)]
pub(crate) struct SignedRequest {
    /// Full URL with the canonical query.
    pub(crate) url: String,
    /// Headers to send, in order (`Host` included).
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
    /// The canonical request (no secrets: certificates are public).
    pub(crate) canonical_request: String,
    pub(crate) string_to_sign: String,
}

/// Signs a CreateSession request for `target` with `identity` at `now`.
pub(crate) fn sign_create_session(
    endpoint: &Endpoint,
    target: &Target,
    params: &SessionParams,
    identity: &Identity,
    now: OffsetDateTime,
) -> Result<SignedRequest, crate::keys::KeyError> {
    let body = serde_json::to_vec(&Body {
        duration_seconds: params.duration_seconds,
        role_session_name: params.role_session_name.as_deref(),
    })
    .expect("serialising a plain struct");
    let query = canonical::canonical_query(&[
        ("profileArn", &target.profile.raw),
        ("roleArn", &target.role.raw),
        ("trustAnchorArn", &target.trust_anchor.raw),
    ]);
    let amz_date = timefmt::format(now, Style::AmzDate);
    let x509 = identity.x509_header();
    let chain = identity.chain_header();
    let parts = RequestParts {
        path: &endpoint.path,
        query: &query,
        host: &endpoint.host,
        amz_date: &amz_date,
        x509: &x509,
        x509_chain: chain.as_deref(),
        body: &body,
    };
    let canonical_request = parts.canonical_request();
    let algorithm = identity.key.algorithm();
    let scope = canonical::scope(&amz_date, &target.region);
    let string_to_sign =
        canonical::string_to_sign(algorithm, &amz_date, &scope, &canonical_request);
    let signature = identity.key.sign(string_to_sign.as_bytes())?;
    let authorization = canonical::authorization(
        algorithm,
        &identity.serial_decimal,
        &scope,
        parts.signed_headers(),
        &signature,
    );
    let mut headers = vec![
        ("host", endpoint.host.clone()),
        ("content-type", CONTENT_TYPE.to_string()),
        ("x-amz-date", amz_date.clone()),
        ("x-amz-x509", x509.clone()),
    ];
    if let Some(c) = &chain {
        headers.push(("x-amz-x509-chain", c.clone()));
    }
    headers.push(("authorization", authorization));
    Ok(SignedRequest {
        url: format!("{}?{query}", endpoint.sessions_url()),
        headers,
        body,
        canonical_request,
        string_to_sign,
    })
}

#[cfg(test)]
mod tests {
    //! Known-answer tests: `tests/data/kat/` (see its README and NOTICE).
    use super::*;
    use crate::arn::{Arn, ArnKind};
    use crate::keys::SigningKey;
    use crate::material::{Identity, parse_certificates};

    const KAT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kat");

    fn kat(name: &str) -> String {
        crate::bounded::test_read_string(format!("{KAT_DIR}/{name}"))
    }

    fn vectors() -> serde_json::Value {
        serde_json::from_str(&kat("vectors.json")).unwrap()
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2024-01-02 03:04:05 UTC)
    }

    fn identity(chain: Vec<Vec<u8>>) -> Identity {
        let leaf = parse_certificates(kat("cert.pem").as_bytes(), "cert.pem")
            .unwrap()
            .remove(0);
        let key = SigningKey::from_pem_or_der(kat("cert-key.pem").as_bytes()).unwrap();
        Identity::new(leaf, chain, key, now()).unwrap()
    }

    fn target() -> Target {
        Target::new(
            Arn::parse(ArnKind::TrustAnchor, "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555").unwrap(),
            Arn::parse(ArnKind::Profile, "arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000").unwrap(),
            Arn::parse(ArnKind::Role, "arn:aws:iam::123456789012:role/ExampleRole").unwrap(),
            None,
        )
        .unwrap()
    }

    #[test]
    fn vector_a_query_arns_byte_for_byte() {
        let v = &vectors()["A-query-arns"];
        let endpoint = Endpoint::parse(&target().default_endpoint()).unwrap();
        let params = SessionParams {
            duration_seconds: 3600,
            role_session_name: None,
        };
        let req =
            sign_create_session(&endpoint, &target(), &params, &identity(vec![]), now()).unwrap();
        assert_eq!(req.body, v["body"].as_str().unwrap().as_bytes());
        assert_eq!(
            req.canonical_request,
            kat("A-query-arns.canonical-request.txt")
        );
        assert_eq!(req.string_to_sign, kat("A-query-arns.string-to-sign.txt"));
        let auth = &req
            .headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .unwrap()
            .1;
        assert_eq!(auth, v["authorization"].as_str().unwrap());
        assert_eq!(
            req.url,
            format!(
                "https://rolesanywhere.us-east-1.amazonaws.com/sessions?{}",
                v["query"].as_str().unwrap()
            )
        );
        assert!(
            req.headers
                .iter()
                .all(|(k, _)| !k.starts_with("x-amz-") || ["x-amz-date", "x-amz-x509"].contains(k))
        );
    }

    #[test]
    fn vector_b_body_arns_and_chain_byte_for_byte() {
        let v = &vectors()["B-body-arns-chain"];
        let subca = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            kat("subca.der.b64").trim(),
        )
        .unwrap();
        let id = identity(vec![subca]);
        let chain = id.chain_header().unwrap();
        assert_eq!(chain, kat("subca.der.b64").trim());
        let x509 = id.x509_header();
        let parts = RequestParts {
            path: "/sessions",
            query: v["query"].as_str().unwrap(),
            host: "rolesanywhere.us-east-1.amazonaws.com",
            amz_date: "20240102T030405Z",
            x509: &x509,
            x509_chain: Some(&chain),
            body: v["body"].as_str().unwrap().as_bytes(),
        };
        let canonical = parts.canonical_request();
        assert_eq!(canonical, kat("B-body-arns-chain.canonical-request.txt"));
        assert_eq!(
            canonical::sha256_hex(parts.body),
            v["payload_sha256"].as_str().unwrap()
        );
        let scope = canonical::scope("20240102T030405Z", "us-east-1");
        let sts =
            canonical::string_to_sign(id.key.algorithm(), "20240102T030405Z", &scope, &canonical);
        assert_eq!(sts, kat("B-body-arns-chain.string-to-sign.txt"));
        let sig = id.key.sign(sts.as_bytes()).unwrap();
        assert_eq!(hex::encode(&sig), v["signature"].as_str().unwrap());
        let auth = canonical::authorization(
            id.key.algorithm(),
            &id.serial_decimal,
            &scope,
            parts.signed_headers(),
            &sig,
        );
        assert_eq!(auth, v["authorization"].as_str().unwrap());
    }

    /// ML-DSA-44/65/87 byte for byte: canonical request, string to sign and `Authorization`
    /// (signature included: ML-DSA is signed deterministically) against
    /// `tests/data/kat-mldsa/` (made by its `generate.py` with `cryptography` and `dilithium-py`).
    #[test]
    fn mldsa_vectors_byte_for_byte() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kat-mldsa");
        let vectors: serde_json::Value = serde_json::from_str(&crate::bounded::test_read_string(
            format!("{dir}/vectors.json"),
        ))
        .unwrap();
        let when = time::macros::datetime!(2026-03-01 00:00:00 UTC);
        for level in ["44", "65", "87"] {
            let v = &vectors[format!("mldsa{level}")];
            let read = |f: &str| crate::bounded::test_read(format!("{dir}/mldsa{level}.{f}"));
            let leaf = parse_certificates(&read("cert.pem"), "cert")
                .unwrap()
                .remove(0);
            let key = SigningKey::from_pem_or_der(&read("key.pem")).unwrap();
            assert_eq!(key.describe(), format!("ML-DSA-{level}"));
            let id = Identity::new(leaf, vec![], key, when).unwrap();
            let endpoint = Endpoint::parse(&target().default_endpoint()).unwrap();
            let params = SessionParams {
                duration_seconds: 3600,
                role_session_name: None,
            };
            let req = sign_create_session(&endpoint, &target(), &params, &id, when).unwrap();
            assert_eq!(req.body, v["body"].as_str().unwrap().as_bytes());
            assert_eq!(
                req.canonical_request,
                v["canonical_request"].as_str().unwrap()
            );
            assert_eq!(req.string_to_sign, v["string_to_sign"].as_str().unwrap());
            let auth = &req
                .headers
                .iter()
                .find(|(k, _)| *k == "authorization")
                .unwrap()
                .1;
            assert_eq!(auth, v["authorization"].as_str().unwrap(), "ML-DSA-{level}");
        }
    }

    #[test]
    fn endpoint_keeps_port_and_prefix() {
        let e = Endpoint::parse("http://127.0.0.1:8443/prefix/").unwrap();
        assert_eq!(e.host, "127.0.0.1:8443");
        assert_eq!(e.path, "/prefix/sessions");
        assert_eq!(e.origin, "http://127.0.0.1:8443");
        let e = Endpoint::parse("https://rolesanywhere.us-east-1.amazonaws.com:443").unwrap();
        assert_eq!(e.host, "rolesanywhere.us-east-1.amazonaws.com");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn role_session_name_goes_in_the_body() {
        let endpoint = Endpoint::parse("http://127.0.0.1:1").unwrap();
        let params = SessionParams {
            duration_seconds: 900,
            role_session_name: Some("me".into()),
        };
        let req =
            sign_create_session(&endpoint, &target(), &params, &identity(vec![]), now()).unwrap();
        assert_eq!(
            req.body,
            br#"{"durationSeconds":900,"roleSessionName":"me"}"#
        );
    }
}
