//! Vault PKI (`docs/vault-openbao.md` §3): `POST <mount>/sign/<role>` with our CSR, or
//! `POST <mount>/issue/<role>` when Vault must make the key. The answer's `data.certificate`
//! is the leaf, `data.ca_chain` (else `data.issuing_ca`) the issuers; the self-signed root is
//! dropped before it reaches `X-Amz-X509-Chain` ([`crate::material::Identity::new`]).

use std::time::Instant;

use serde_json::{Value, json};

use super::Pki;
use super::client::{VaultClient, VaultError};
use crate::keys::SigningKey;
use crate::material::parse_certificates;
use crate::secret::Secret;

/// What Vault returned.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) leaf_der: Vec<u8>,
    /// Issuers' DER, nearest first (may include the root).
    pub(crate) chain_der: Vec<Vec<u8>>,
    /// The key, in issue mode.
    pub(crate) key: Option<SigningKey>,
}

/// What to ask of PKI.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request<'a> {
    /// `sign/<role>` with our CSR (PEM); the key stays with us.
    Sign { csr_pem: &'a str },
    /// `issue/<role>`: Vault makes a key of this type (`ec`, `rsa`) and size.
    Issue {
        key_type: &'static str,
        key_bits: u32,
    },
}

/// Has PKI sign a CSR or issue a key and certificate for `cn`, retrying until `deadline`.
pub(crate) async fn sign_or_issue(
    client: &VaultClient,
    token: &Secret,
    pki: &Pki,
    cn: &str,
    request: Request<'_>,
    deadline: Instant,
) -> Result<Issued, VaultError> {
    let (verb, body) = match request {
        Request::Sign { csr_pem } => (
            "sign",
            json!({"csr": csr_pem, "common_name": cn, "ttl": pki.ttl}),
        ),
        Request::Issue { key_type, key_bits } => (
            "issue",
            json!({"common_name": cn, "ttl": pki.ttl, "key_type": key_type, "key_bits": key_bits, "private_key_format": "pkcs8"}),
        ),
    };
    let path = format!("{}/{verb}/{}", pki.mount, pki.role);
    let op = format!(
        "PKI {verb} ({path}, common name {})",
        crate::limits::quote(cn)
    );
    let hint = format!(
        "usual causes: the Vault policy lacks update on {path}, or the token belongs to another role"
    );
    let answer = client
        .post(&op, &path, Some(token), &body, Some(&hint), deadline)
        .await?;
    parse_answer(&op, &answer["data"])
}

pub(crate) fn parse_answer(op: &str, data: &Value) -> Result<Issued, VaultError> {
    let bad = |why: String| VaultError::BadResponse {
        op: op.to_string(),
        why,
    };
    let leaf_pem = data["certificate"]
        .as_str()
        .ok_or_else(|| bad("no data.certificate".into()))?;
    let mut certs = parse_certificates(leaf_pem.as_bytes(), "Vault's certificate")
        .map_err(|e| bad(e.to_string()))?;
    let leaf_der = certs.remove(0);
    let mut chain_der = certs;
    let chain_pems: Vec<&str> = match data["ca_chain"].as_array() {
        Some(a) if !a.is_empty() => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => data["issuing_ca"].as_str().into_iter().collect(),
    };
    for pem in chain_pems {
        for der in parse_certificates(pem.as_bytes(), "Vault's ca_chain")
            .map_err(|e| bad(e.to_string()))?
        {
            if der != leaf_der && !chain_der.contains(&der) {
                chain_der.push(der);
            }
        }
    }
    let key = match data["private_key"].as_str() {
        Some(pem) => Some(
            SigningKey::from_pem_or_der(pem.as_bytes())
                .map_err(|e| bad(format!("private_key: {e}")))?,
        ),
        None => None,
    };
    Ok(Issued {
        leaf_der,
        chain_der,
        key,
    })
}
