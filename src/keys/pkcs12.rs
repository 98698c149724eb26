//! PKCS#12 (`.p12` / `.pfx`, DER) files: one private key and its certificates.
//!
//! Contract (as `aws_signing_helper` reads them, given as `--certificate` without
//! `--private-key`): the password is empty unless one is given (flag, `IAMRA_*` variable or
//! file); the MAC is verified; legacy (RC2-40 / 3DES with SHA-1 MAC) and modern (AES-256-CBC,
//! PBKDF2-HMAC-SHA256, SHA-256 MAC) encodings are read (`p12-keystore`). The file must hold
//! exactly one private key; the leaf is the certificate whose public key is that key's, every
//! other certificate is the chain (its order is left to [`crate::material`]). A wrong password is
//! [`KeyError::WrongPassword`]; the password never appears in a message.

use super::{KeyError, SigningKey};
use crate::secret::Secret;

/// What a PKCS#12 file holds, the leaf told from the chain.
pub(crate) struct Pkcs12Contents {
    /// The private key.
    pub(crate) key: SigningKey,
    /// The certificate of that key (DER).
    pub(crate) leaf: Vec<u8>,
    /// The other certificates (DER), in file order.
    pub(crate) others: Vec<Vec<u8>>,
}

/// True when `bytes` looks like a PKCS#12 PFX (a DER SEQUENCE starting with version 3), not a
/// certificate (whose first element is a SEQUENCE).
pub(crate) fn looks_like_pkcs12(bytes: &[u8]) -> bool {
    // 30 len.. 02 01 03: PFX ::= SEQUENCE { version INTEGER {v3(3)}, ... }
    let Some(&0x30) = bytes.first() else {
        return false;
    };
    let header = match bytes.get(1) {
        Some(&l) if l < 0x80 => 2,
        Some(&l) if (0x81..=0x84).contains(&l) => 2 + usize::from(l - 0x80),
        _ => return false,
    };
    bytes.get(header..header + 3) == Some(&[0x02, 0x01, 0x03])
}

/// Decrypts a PKCS#12 file with `password` (empty when `None`) and tells the leaf from the rest.
pub(crate) fn load(bytes: &[u8], password: Option<&Secret>) -> Result<Pkcs12Contents, KeyError> {
    use p12_keystore::error::Error as P12;
    let pw = password.map(Secret::expose).unwrap_or("");
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, pw).map_err(|e| match e {
        P12::MacError(_) | P12::UnpadError => {
            if password.is_none() {
                KeyError::Pkcs12NeedsPassword
            } else {
                KeyError::WrongPassword
            }
        }
        P12::UnsupportedEncryptionScheme | P12::UnsupportedMacAlgorithm => {
            KeyError::UnsupportedEncryption(format!("PKCS#12 {e}"))
        }
        other => KeyError::Malformed(format!("PKCS#12: {other}")),
    })?;
    let [bag] = archive.keys.as_slice() else {
        return Err(KeyError::Malformed(format!(
            "PKCS#12 file holds {} private keys; it must hold exactly one",
            archive.keys.len()
        )));
    };
    let key = SigningKey::from_pkcs8(bag.key.as_der())?;
    let public = key.public_key_bits();
    let mut leaf = None;
    let mut others = Vec::new();
    for c in &archive.certs {
        let der = c.cert.as_der().to_vec();
        if leaf.is_none() && spki_bits(&der).as_deref() == Some(public.as_slice()) {
            leaf = Some(der);
        } else {
            others.push(der);
        }
    }
    let leaf = leaf.ok_or_else(|| {
        KeyError::Malformed(format!(
            "PKCS#12 file has no certificate for its private key ({}), among {} certificates",
            key.describe(),
            archive.certs.len()
        ))
    })?;
    Ok(Pkcs12Contents { key, leaf, others })
}

/// The `subjectPublicKey` bits of a certificate.
fn spki_bits(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pfx_is_told_from_a_certificate() {
        assert!(looks_like_pkcs12(&[
            0x30, 0x82, 0x0b, 0xd0, 0x02, 0x01, 0x03
        ]));
        assert!(looks_like_pkcs12(&[0x30, 0x20, 0x02, 0x01, 0x03]));
        let cert = include_bytes!("../../tests/data/kat/cert.pem");
        assert!(!looks_like_pkcs12(cert));
        assert!(!looks_like_pkcs12(&[0x30, 0x82, 0x0b, 0xd0, 0x30, 0x82]));
        assert!(!looks_like_pkcs12(b""));
    }

    #[test]
    fn garbage_is_malformed_not_a_password_problem() {
        let e = load(&[0x30, 0x03, 0x02, 0x01, 0x03], None).err().unwrap();
        assert!(matches!(e, KeyError::Malformed(_)), "{e}");
    }
}
