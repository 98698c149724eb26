//! The key generated in memory for `init`/`serve`, and its CSR (rcgen).
//!
//! EC keys come from `ring` through rcgen. `ring` cannot generate RSA keys, so RSA keys come
//! from RustCrypto's `rsa` (generation only; signing is still `ring`'s). The PKCS#8 bytes are
//! wiped once loaded; the key is never written anywhere.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::keys::SigningKey;

/// The key types this tool generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// A fresh key and a CSR for it.
#[derive(Debug)]
pub(crate) struct Generated {
    /// The key that will sign CreateSession.
    pub(crate) key: SigningKey,
    /// PEM CSR with the common name as subject.
    pub(crate) csr_pem: String,
}

/// Generates a key of type `kt` and a CSR for `cn`.
pub(crate) fn generate(kt: KeyType, cn: &str) -> Result<Generated, String> {
    let pkcs8: Zeroizing<Vec<u8>> = match kt {
        KeyType::EcP256 | KeyType::EcP384 => {
            let alg = if kt == KeyType::EcP256 {
                &rcgen::PKCS_ECDSA_P256_SHA256
            } else {
                &rcgen::PKCS_ECDSA_P384_SHA384
            };
            Zeroizing::new(
                KeyPair::generate_for(alg)
                    .map_err(|e| format!("EC key generation: {e}"))?
                    .serialize_der(),
            )
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            use rsa::pkcs8::EncodePrivateKey;
            let bits = match kt {
                KeyType::Rsa2048 => 2048,
                KeyType::Rsa3072 => 3072,
                _ => 4096,
            };
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
                .map_err(|e| format!("RSA key generation: {e}"))?;
            let doc = key
                .to_pkcs8_der()
                .map_err(|e| format!("RSA key encoding: {e}"))?;
            Zeroizing::new(doc.as_bytes().to_vec())
        }
    };
    let alg = match kt {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        _ => &rcgen::PKCS_RSA_SHA256,
    };
    let der = PrivatePkcs8KeyDer::from(pkcs8.as_slice());
    let kp =
        KeyPair::from_pkcs8_der_and_sign_algo(&der, alg).map_err(|e| format!("key import: {e}"))?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| format!("CSR: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let csr_pem = params
        .serialize_request(&kp)
        .and_then(|r| r.pem())
        .map_err(|e| format!("CSR: {e}"))?;
    let key = SigningKey::from_pkcs8(&pkcs8).map_err(|e| format!("key load: {e}"))?;
    Ok(Generated { key, csr_pem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_each_ec_type_with_a_csr() {
        for (kt, desc) in [(KeyType::EcP256, "EC P-256"), (KeyType::EcP384, "EC P-384")] {
            let g = generate(kt, "app.payments.workload.internal").unwrap();
            assert_eq!(g.key.describe(), desc);
            assert!(g.csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
            assert!(!format!("{g:?}").contains("PRIVATE"));
        }
    }

    #[test]
    fn generates_rsa() {
        let g = generate(KeyType::Rsa2048, "x").unwrap();
        assert_eq!(g.key.describe(), "RSA-2048");
    }
}
