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
use crate::limits::MAX_PKCS12_ITERATIONS;
use crate::secret::Secret;

/// What a PKCS#12 file holds, the leaf told from the chain.
pub(crate) struct Pkcs12Contents {
    /// The private key.
    pub(crate) key: SigningKey,
    /// The certificate of that key (DER).
    pub(crate) leaf: Vec<u8>,
    /// Where the leaf is among the file's certificates (0-based), for messages.
    pub(crate) leaf_position: usize,
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

const OID_DATA: &str = "1.2.840.113549.1.7.1";
const OID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const OID_SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const OID_PBES2: &str = "1.2.840.113549.1.5.13";
/// `pkcs-12PbeIds` (PKCS#12 PBE, RFC 7292 appendix C): their parameters are salt + iterations.
const PKCS12_PBE_PREFIX: &str = "1.2.840.113549.1.12.1.";

/// Refuses a file whose MAC, encrypted contents or shrouded keys ask for more key-derivation
/// work than the caps ([`MAX_PKCS12_ITERATIONS`], scrypt's in [`super::encrypted`]), before
/// any is done. What does not parse is left to p12-keystore, which names it. (Keys inside an
/// encrypted content are seen only after its decryption; p12-keystore caps their PBKDF2 at the
/// same 1,000,000 iterations.)
fn check_costs(bytes: &[u8]) -> Result<(), KeyError> {
    use ::pkcs12::cms::content_info::ContentInfo;
    use ::pkcs12::cms::encrypted_data::EncryptedData;
    use ::pkcs12::pbe_params::EncryptedPrivateKeyInfo;
    use pkcs8::der::asn1::{ContextSpecific, OctetString};
    use pkcs8::der::{Decode, Encode};

    let Ok(pfx) = ::pkcs12::Pfx::from_der(bytes) else {
        return Ok(());
    };
    if let Some(mac) = &pfx.mac_data
        && i64::from(mac.iterations) > i64::from(MAX_PKCS12_ITERATIONS)
    {
        return Err(KeyError::TooCostly(format!(
            "a MAC with {} iterations (at most {MAX_PKCS12_ITERATIONS} are computed)",
            mac.iterations
        )));
    }
    let octets = |ci: &ContentInfo| {
        ci.content
            .to_der()
            .ok()
            .and_then(|d| OctetString::from_der(&d).ok())
    };
    if pfx.auth_safe.content_type.to_string() != OID_DATA {
        return Ok(());
    }
    let Some(safes) =
        octets(&pfx.auth_safe).and_then(|o| Vec::<ContentInfo>::from_der(o.as_bytes()).ok())
    else {
        return Ok(());
    };
    for ci in &safes {
        match ci.content_type.to_string().as_str() {
            OID_ENCRYPTED_DATA => {
                if let Some(ed) = ci
                    .content
                    .to_der()
                    .ok()
                    .and_then(|d| EncryptedData::from_der(&d).ok())
                {
                    check_algorithm(&ed.enc_content_info.content_enc_alg)?;
                }
            }
            OID_DATA => {
                let Some(bags) =
                    octets(ci).and_then(|o| Vec::<::pkcs12::SafeBag>::from_der(o.as_bytes()).ok())
                else {
                    continue;
                };
                for bag in bags
                    .iter()
                    .filter(|b| b.bag_id.to_string() == OID_SHROUDED_KEY_BAG)
                {
                    if let Ok(k) =
                        ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(&bag.bag_value)
                    {
                        check_algorithm(&k.value.encryption_algorithm)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The cost check of one PBES2 or PKCS#12 PBE algorithm identifier.
fn check_algorithm(alg: &pkcs8::spki::AlgorithmIdentifierOwned) -> Result<(), KeyError> {
    use pkcs8::der::{Decode, Encode};
    let oid = alg.oid.to_string();
    let Some(params) = alg.parameters.as_ref().and_then(|p| p.to_der().ok()) else {
        return Ok(());
    };
    if oid == OID_PBES2 {
        if let Ok(p) = pkcs8::pkcs5::pbes2::Parameters::from_der(&params) {
            super::encrypted::check_pbes2_cost(&p, MAX_PKCS12_ITERATIONS)?;
        }
    } else if oid.starts_with(PKCS12_PBE_PREFIX)
        && let Ok(p) = ::pkcs12::pbe_params::Pkcs12PbeParams::from_der(&params)
        && i64::from(p.iterations) > i64::from(MAX_PKCS12_ITERATIONS)
    {
        return Err(KeyError::TooCostly(format!(
            "PKCS#12 PBE with {} iterations (at most {MAX_PKCS12_ITERATIONS} are computed)",
            p.iterations
        )));
    }
    Ok(())
}

/// Decrypts a PKCS#12 file with `password` (empty when `None`) and tells the leaf from the rest.
pub(crate) fn load(bytes: &[u8], password: Option<&Secret>) -> Result<Pkcs12Contents, KeyError> {
    use p12_keystore::error::Error as P12;
    check_costs(bytes)?;
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
        P12::InvalidParameters => KeyError::Malformed(format!(
            "its encryption parameters are missing, or ask for more than is computed (over {MAX_PKCS12_ITERATIONS} iterations)"
        )),
        other => KeyError::Malformed(format!(
            "not a readable PKCS#12 file ({})",
            crate::material::der_words(&other.to_string())
        )),
    })?;
    let [bag] = archive.keys.as_slice() else {
        return Err(KeyError::Malformed(format!(
            "PKCS#12 file holds {} private keys; it must hold exactly one",
            archive.keys.len()
        )));
    };
    let key = SigningKey::from_pkcs8(bag.key.as_der())?;
    let mut leaf = None;
    let mut others = Vec::new();
    for (i, c) in archive.certs.iter().enumerate() {
        let der = c.cert.as_der().to_vec();
        if leaf.is_none() && key.matches_certificate(&der) {
            leaf = Some((i, der));
        } else {
            others.push(der);
        }
    }
    let (leaf_position, leaf) = leaf.ok_or_else(|| {
        KeyError::Malformed(format!(
            "PKCS#12 file has no certificate for its private key ({}), among {} certificates",
            key.describe(),
            archive.certs.len()
        ))
    })?;
    Ok(Pkcs12Contents {
        key,
        leaf,
        leaf_position,
        others,
    })
}

/// [`load`], given up at `deadline` (its key derivations run on a thread: [`super::within`]).
pub(crate) fn load_before(
    bytes: &[u8],
    password: Option<&Secret>,
    deadline: std::time::Instant,
) -> Result<Pkcs12Contents, KeyError> {
    let bytes = bytes.to_vec();
    let password = password.cloned();
    super::within(deadline, move || load(&bytes, password.as_ref()))
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
