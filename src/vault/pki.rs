//! Vault PKI (`docs/vault-openbao.md` §3): `POST <mount>/sign/<role>` with our CSR, or
//! `POST <mount>/issue/<role>` when Vault must make the key. The answer's `data.certificate`
//! is the leaf, `data.ca_chain` (else `data.issuing_ca`) the issuers; the self-signed root is
//! dropped before it reaches `X-Amz-X509-Chain` ([`crate::material::Identity::new`]).

use serde_json::{Value, json};

use super::client::{VaultClient, VaultError};
use crate::cli::{KeyType, PkiMode};
use crate::config::PkiConfig;
use crate::keys::SigningKey;
use crate::material::parse_certificates;
use crate::secret::Secret;

/// What Vault returned.
#[derive(Debug)]
pub struct Issued {
    /// Leaf DER.
    pub leaf_der: Vec<u8>,
    /// Issuers' DER, nearest first (may include the root).
    pub chain_der: Vec<Vec<u8>>,
    /// The key, in issue mode.
    pub key: Option<SigningKey>,
}

/// Signs `csr_pem` (sign mode) or issues a key and certificate (issue mode) for `cn`.
pub async fn obtain(
    client: &VaultClient,
    token: &Secret,
    pki: &PkiConfig,
    cn: &str,
    csr_pem: Option<&str>,
) -> Result<Issued, VaultError> {
    let (verb, body) = match (pki.mode, csr_pem) {
        (PkiMode::Sign, Some(csr)) => (
            "sign",
            json!({"csr": csr, "common_name": cn, "ttl": pki.ttl}),
        ),
        _ => {
            let (kt, bits) = match pki.key_type {
                KeyType::EcP256 => ("ec", 256),
                KeyType::EcP384 => ("ec", 384),
                KeyType::Rsa2048 => ("rsa", 2048),
                KeyType::Rsa3072 => ("rsa", 3072),
                KeyType::Rsa4096 => ("rsa", 4096),
            };
            (
                "issue",
                json!({"common_name": cn, "ttl": pki.ttl, "key_type": kt, "key_bits": bits, "private_key_format": "pkcs8"}),
            )
        }
    };
    let path = format!("{}/{verb}/{}", pki.mount, pki.role);
    let op = format!("PKI {verb} ({path}, common name {cn})");
    let hint = format!(
        "usual causes: the Vault policy lacks update on {path}, or the token belongs to another role"
    );
    let answer = client
        .post(&op, &path, Some(token), &body, Some(&hint))
        .await?;
    parse_answer(&op, &answer["data"])
}

fn parse_answer(op: &str, data: &Value) -> Result<Issued, VaultError> {
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
