//! Encrypted private keys: PKCS#8 `ENCRYPTED PRIVATE KEY` (decrypted), and the formats refused
//! with the command that converts them.
//!
//! Contract (what `aws_signing_helper --pkcs8-password` reads, and what ACM exports):
//! - PBES2 (RFC 8018) with AES-128/192/256-CBC (or 3DES-CBC) and PBKDF2 with the HMAC-SHA1,
//!   -SHA224, -SHA256, -SHA384 or -SHA512 PRF, or with scrypt: decrypted with the password
//!   (RustCrypto `pkcs8`/`pkcs5`). ACM's exportable certificates use AES-256-CBC + HMAC-SHA1.
//! - PBES1 (PKCS#5 v1.5 `pbeWithMD5AndDES-CBC`… and PKCS#12 `pbeWithSHAAnd3-KeyTripleDES-CBC`…):
//!   refused, with `openssl pkcs8 -topk8 -v2 aes-256-cbc` to convert.
//! - OpenSSL's legacy encrypted PEM (`Proc-Type: 4,ENCRYPTED`, `DEK-Info`): refused, with the
//!   same conversion.
//! - A wrong password (or a damaged file: PBES2 cannot tell them apart) is one error,
//!   [`KeyError::WrongPassword`]; the password never appears in any message.

use pkcs8::der::{Decode, Reader, SliceReader, asn1::OctetStringRef};
use pkcs8::pkcs5;
use pkcs8::spki::AlgorithmIdentifierRef;
use zeroize::Zeroizing;

use super::KeyError;
use crate::limits::{MAX_PBKDF2_ITERATIONS, MAX_SCRYPT_MEMORY, MAX_SCRYPT_PARALLELISM};
use crate::secret::Secret;

const OID_PBES2: &str = "1.2.840.113549.1.5.13";

/// The command that turns PBES1 or legacy-PEM keys into PBES2 PKCS#8 (asks both passwords).
pub(crate) const CONVERT_TO_PKCS8: &str =
    "openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8.pem";

/// Names a PBES1 / PKCS#12-PBE scheme OID for the error message.
fn pbes1_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.5.1" => "PBES1 pbeWithMD2AndDES-CBC",
        "1.2.840.113549.1.5.3" => "PBES1 pbeWithMD5AndDES-CBC",
        "1.2.840.113549.1.5.4" => "PBES1 pbeWithMD2AndRC2-CBC",
        "1.2.840.113549.1.5.6" => "PBES1 pbeWithMD5AndRC2-CBC",
        "1.2.840.113549.1.5.10" => "PBES1 pbeWithSHA1AndDES-CBC",
        "1.2.840.113549.1.5.11" => "PBES1 pbeWithSHA1AndRC2-CBC",
        "1.2.840.113549.1.12.1.1" => "PKCS#12 PBE pbeWithSHAAnd128BitRC4",
        "1.2.840.113549.1.12.1.2" => "PKCS#12 PBE pbeWithSHAAnd40BitRC4",
        "1.2.840.113549.1.12.1.3" => "PKCS#12 PBE pbeWithSHAAnd3-KeyTripleDES-CBC",
        "1.2.840.113549.1.12.1.4" => "PKCS#12 PBE pbeWithSHAAnd2-KeyTripleDES-CBC",
        "1.2.840.113549.1.12.1.5" => "PKCS#12 PBE pbeWithSHAAnd128BitRC2-CBC",
        "1.2.840.113549.1.12.1.6" => "PKCS#12 PBE pbewithSHAAnd40BitRC2-CBC",
        _ => return None,
    })
}

/// Decrypts an `EncryptedPrivateKeyInfo` (DER) into the `PrivateKeyInfo` DER it holds.
pub(crate) fn decrypt_pkcs8(
    der: &[u8],
    password: Option<&Secret>,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    // The outer shape first, so that schemes `pkcs5` cannot even parse get their own message.
    let oid = outer_algorithm(der)?;
    if let Some(name) = pbes1_name(&oid) {
        return Err(KeyError::UnsupportedEncryption(name.to_string()));
    }
    if oid != OID_PBES2 {
        return Err(KeyError::UnsupportedEncryption(format!("scheme {oid}")));
    }
    let Some(password) = password else {
        return Err(KeyError::Encrypted);
    };
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::UnsupportedAlgorithm { oid }) => {
            KeyError::UnsupportedEncryption(format!("PBES2 with algorithm {oid}"))
        }
        other => KeyError::Malformed(format!(
            "encrypted PKCS#8: {}",
            crate::material::der_words(&other.to_string())
        )),
    })?;
    check_kdf_cost(&info.encryption_algorithm)?;
    match info.decrypt(password.expose().as_bytes()) {
        Ok(doc) => {
            let plain = Zeroizing::new(doc.as_bytes().to_vec());
            // A wrong password passes the CBC padding check once in ~256 tries; what comes
            // out is then not a PrivateKeyInfo.
            if pkcs8::PrivateKeyInfoRef::try_from(plain.as_slice()).is_err() {
                return Err(KeyError::WrongPassword);
            }
            Ok(plain)
        }
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::DecryptFailed)) => {
            Err(KeyError::WrongPassword)
        }
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::UnsupportedAlgorithm { oid })) => Err(
            KeyError::UnsupportedEncryption(format!("PBES2 with algorithm {oid}")),
        ),
        Err(e) => Err(KeyError::Malformed(format!(
            "encrypted PKCS#8: {}",
            crate::material::der_words(&e.to_string())
        ))),
    }
}

/// Refuses key-derivation parameters above [`MAX_PBKDF2_ITERATIONS`], [`MAX_SCRYPT_MEMORY`] or
/// [`MAX_SCRYPT_PARALLELISM`], before any work is done.
fn check_kdf_cost(scheme: &pkcs5::EncryptionScheme) -> Result<(), KeyError> {
    match scheme {
        pkcs5::EncryptionScheme::Pbes2(params) => check_pbes2_cost(params, MAX_PBKDF2_ITERATIONS),
        _ => Ok(()),
    }
}

/// Refuses PBES2 parameters whose PBKDF2 asks more than `max_iterations`, or whose scrypt asks
/// more than [`MAX_SCRYPT_MEMORY`] or [`MAX_SCRYPT_PARALLELISM`].
pub(crate) fn check_pbes2_cost(
    params: &pkcs5::pbes2::Parameters,
    max_iterations: u32,
) -> Result<(), KeyError> {
    match &params.kdf {
        pkcs5::pbes2::Kdf::Pbkdf2(p) if p.iteration_count > max_iterations => {
            Err(KeyError::TooCostly(format!(
                "PBKDF2 with {} iterations (at most {max_iterations} are computed)",
                p.iteration_count
            )))
        }
        pkcs5::pbes2::Kdf::Scrypt(p) => {
            let memory = 128u64
                .saturating_mul(u64::from(p.block_size))
                .saturating_mul(p.cost_parameter);
            if memory > MAX_SCRYPT_MEMORY || p.parallelization > MAX_SCRYPT_PARALLELISM {
                Err(KeyError::TooCostly(format!(
                    "scrypt with N={} r={} p={} ({} MiB; at most {} MiB and p={MAX_SCRYPT_PARALLELISM} are computed)",
                    p.cost_parameter,
                    p.block_size,
                    p.parallelization,
                    memory / (1024 * 1024),
                    MAX_SCRYPT_MEMORY / (1024 * 1024)
                )))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The `encryptionAlgorithm` OID of an `EncryptedPrivateKeyInfo`.
fn outer_algorithm(der: &[u8]) -> Result<String, KeyError> {
    let bad = |e: pkcs8::der::Error| {
        KeyError::Malformed(format!(
            "encrypted PKCS#8: {}",
            crate::material::der_words(&e.to_string())
        ))
    };
    let mut r = SliceReader::new(der).map_err(bad)?;
    r.sequence(|r| {
        let alg = AlgorithmIdentifierRef::decode(r)?;
        let _data = <&OctetStringRef>::decode(r)?;
        Ok(alg.oid.to_string())
    })
    .map_err(bad)
}

/// True when `der` is an `EncryptedPrivateKeyInfo` with a PBES1/PBES2 scheme.
pub(crate) fn is_encrypted_pkcs8(der: &[u8]) -> bool {
    outer_algorithm(der).is_ok_and(|oid| oid == OID_PBES2 || pbes1_name(&oid).is_some())
}

/// True for OpenSSL's legacy encrypted PEM (`Proc-Type: 4,ENCRYPTED` inside a key block).
pub(crate) fn is_legacy_encrypted_pem(bytes: &[u8]) -> bool {
    bytes
        .windows(b"Proc-Type: 4,ENCRYPTED".len())
        .any(|w| w == b"Proc-Type: 4,ENCRYPTED")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[u8] = include_bytes!("../../tests/data/keys/p256.pem");
    const SHA1: &[u8] = include_bytes!("../../tests/data/keys/p256.aes256-sha1.p8.pem");
    const SCRYPT: &[u8] = include_bytes!("../../tests/data/keys/p256.scrypt.p8.pem");
    const PBES1: &[u8] = include_bytes!("../../tests/data/keys/p256.pbes1.p8.pem");

    fn der(pem: &[u8]) -> Vec<u8> {
        pkcs8::der::pem::decode_vec(pem).unwrap().1
    }

    #[test]
    fn pbes2_sha1_and_scrypt_decrypt_and_wrong_password_is_named() {
        let pw = Secret::new("correct-horse");
        for enc in [SHA1, SCRYPT] {
            assert_eq!(
                decrypt_pkcs8(&der(enc), Some(&pw)).unwrap().as_slice(),
                der(PLAIN).as_slice()
            );
            let wrong = Secret::new("battery-staple");
            assert_eq!(
                decrypt_pkcs8(&der(enc), Some(&wrong)).unwrap_err(),
                KeyError::WrongPassword
            );
            assert_eq!(
                decrypt_pkcs8(&der(enc), None).unwrap_err(),
                KeyError::Encrypted
            );
        }
    }

    #[test]
    fn pbes1_is_refused_with_the_conversion() {
        let e = decrypt_pkcs8(&der(PBES1), Some(&Secret::new("correct-horse"))).unwrap_err();
        assert_eq!(
            e,
            KeyError::UnsupportedEncryption("PKCS#12 PBE pbeWithSHAAnd3-KeyTripleDES-CBC".into())
        );
        assert!(e.to_string().contains(CONVERT_TO_PKCS8), "{e}");
        assert!(matches!(
            decrypt_pkcs8(b"\x30\x03\x02\x01\x00", None),
            Err(KeyError::Malformed(_))
        ));
    }

    /// `enc` with its KDF made `expensive`, re-encoded (the data stays: the cost check comes
    /// first, so nothing is derived).
    fn with_kdf(enc: &[u8], expensive: impl Fn(&mut pkcs5::pbes2::Kdf)) -> Vec<u8> {
        use pkcs8::der::Encode;
        let der = der(enc);
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
        let mut alg = info.encryption_algorithm.clone();
        let pkcs5::EncryptionScheme::Pbes2(params) = &mut alg else {
            panic!("PBES2 expected")
        };
        expensive(&mut params.kdf);
        pkcs8::EncryptedPrivateKeyInfo {
            encryption_algorithm: alg,
            encrypted_data: info.encrypted_data,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn a_key_derivation_that_would_not_end_is_refused_before_it_starts() {
        let pw = Secret::new("correct-horse");
        let slow = with_kdf(SHA1, |k| {
            if let pkcs5::pbes2::Kdf::Pbkdf2(p) = k {
                p.iteration_count = 2_000_000_000;
            }
        });
        let t = std::time::Instant::now();
        let e = decrypt_pkcs8(&slow, Some(&pw)).unwrap_err().to_string();
        assert!(e.contains("2000000000 iterations"), "{e}");
        let huge = with_kdf(SCRYPT, |k| {
            if let pkcs5::pbes2::Kdf::Scrypt(p) = k {
                p.cost_parameter = 1 << 30;
            }
        });
        let e = decrypt_pkcs8(&huge, Some(&pw)).unwrap_err().to_string();
        assert!(e.contains("N=1073741824"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
