//! The file key store: private keys in files, PEM or DER — PKCS#8, encrypted PKCS#8
//! ([`super::encrypted`]), PKCS#1 RSA, SEC1 EC ([`super::ec`]), ML-DSA ([`super::mldsa`]).
//! PKCS#12 files, which hold the certificates too, are [`super::pkcs12`].
//!
//! Refused with a reason and the fix: RSA below 2048 or above 4096 bits, other curves and key
//! types, PBES1 and OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` PEM (with the `openssl` command
//! that converts them), TSS2 (TPM-wrapped) keys. Every key is checked whole at load time (an
//! RSA key by one signature, an EC key by [`super::ec`]'s checks, an ML-DSA key by its form),
//! so a key that loads signs.

use p256::pkcs8::PrivateKeyInfo;
use ring::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, RsaKeyPair};
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::{Digest, KeyError, KeyKind, Signer, SigningKey, ec, encrypted, mldsa, oids};
use crate::secret::Secret;

/// An RSA key `ring` signs with.
pub(crate) struct RsaKey(RsaKeyPair);

impl Signer for RsaKey {
    fn kind(&self) -> KeyKind {
        KeyKind::Rsa {
            bits: self.0.public().modulus_len() * 8,
        }
    }

    fn public_key_bits(&self) -> Vec<u8> {
        self.0.public().as_ref().to_vec()
    }

    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, KeyError> {
        let alg = match digest {
            Digest::Sha256 => &RSA_PKCS1_SHA256,
            Digest::Sha384 => &RSA_PKCS1_SHA384,
            Digest::Sha512 => &RSA_PKCS1_SHA512,
        };
        let mut sig = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(alg, &ring::rand::SystemRandom::new(), message, &mut sig)
            .map_err(|_| KeyError::Signing("RSA signing failed".into()))?;
        Ok(sig)
    }
}

/// Which DER container a block holds.
enum Container {
    Pkcs8,
    Pkcs1,
    Sec1,
}

/// Reads a private key from PEM or DER, decrypting an encrypted PKCS#8 key with `password`.
/// In a PEM file with several blocks (a combined key + certificates file), the first key
/// block is used.
pub(crate) fn load(bytes: &[u8], password: Option<&Secret>) -> Result<SigningKey, KeyError> {
    if contains(bytes, b"-----BEGIN TSS2 PRIVATE KEY-----") {
        return Err(KeyError::KeyStore(
            "a TSS2 PRIVATE KEY (a key wrapped by a TPM)".into(),
        ));
    }
    if encrypted::is_legacy_encrypted_pem(bytes) {
        return Err(KeyError::LegacyEncryptedPem);
    }
    if let Some(der) = pem_block(bytes, "ENCRYPTED PRIVATE KEY")? {
        let plain = encrypted::decrypt_pkcs8(&der, password)?;
        return from_pkcs8(&plain);
    }
    let mut pem_found = false;
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let Ok((kind, der)) = item else { break };
        pem_found = true;
        let der = zeroize::Zeroizing::new(der);
        let container = match kind {
            SectionKind::PrivateKey => Container::Pkcs8,
            SectionKind::RsaPrivateKey => Container::Pkcs1,
            SectionKind::EcPrivateKey => Container::Sec1,
            _ => continue,
        };
        return from_container(container, &der);
    }
    if pem_found || bytes.starts_with(b"-----") {
        return Err(KeyError::NotAKey);
    }
    // DER: an encrypted PKCS#8, else each plain container in turn.
    if encrypted::is_encrypted_pkcs8(bytes) {
        let plain = encrypted::decrypt_pkcs8(bytes, password)?;
        return from_pkcs8(&plain);
    }
    if super::pkcs12::looks_like_pkcs12(bytes) {
        return Err(KeyError::Malformed(
            "this is a PKCS#12 file (key and certificates together): pass it as --certificate, without --private-key".into(),
        ));
    }
    for container in [Container::Pkcs8, Container::Pkcs1, Container::Sec1] {
        // A DER that is not this container is tried as the next; one that is, but fails a
        // check, says why.
        if container.parses(bytes) {
            return from_container(container, bytes);
        }
    }
    Err(KeyError::NotAKey)
}

impl Container {
    /// Whether `der` has this container's outer shape.
    fn parses(&self, der: &[u8]) -> bool {
        match self {
            Container::Pkcs8 => PrivateKeyInfo::try_from(der).is_ok(),
            Container::Pkcs1 => {
                use rsa::pkcs1::der::Decode as _;
                rsa::pkcs1::RsaPrivateKey::from_der(der).is_ok()
            }
            Container::Sec1 => {
                use sec1::der::Decode as _;
                sec1::EcPrivateKey::from_der(der).is_ok()
            }
        }
    }
}

fn from_container(container: Container, der: &[u8]) -> Result<SigningKey, KeyError> {
    match container {
        Container::Pkcs8 => from_pkcs8(der),
        Container::Pkcs1 => rsa_from_pkcs1(der),
        Container::Sec1 => ec::from_sec1(der, None, None).map(SigningKey::new),
    }
}

/// Loads a PKCS#8 `PrivateKeyInfo`, choosing the key type by its algorithm.
pub(crate) fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
    let info = PrivateKeyInfo::try_from(der).map_err(|e| {
        KeyError::Malformed(format!(
            "not a readable PKCS#8 key ({})",
            crate::material::der_words(&e.to_string())
        ))
    })?;
    let oid = info.algorithm.oid.to_string();
    match oid.as_str() {
        oids::RSA => {
            check_rsa_size(info.private_key)?;
            rsa_that_signs(RsaKeyPair::from_pkcs8(der))
        }
        oids::EC => {
            let curve = match info.algorithm.parameters_oid() {
                Ok(c) => c.to_string(),
                Err(_) => {
                    return Err(KeyError::Malformed(
                        "the EC key names no curve in its PKCS#8 algorithm".into(),
                    ));
                }
            };
            ec::from_sec1(info.private_key, Some(&curve), info.public_key).map(SigningKey::new)
        }
        other => match mldsa::MlDsaKey::from_pkcs8_private_key(other, info.private_key) {
            Some(key) => key.map(SigningKey::new),
            None => Err(KeyError::Unsupported(oids::algorithm_name(other))),
        },
    }
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The DER of the first PEM block labelled `label`, if there is one.
pub(crate) fn pem_block(bytes: &[u8], label: &str) -> Result<Option<Vec<u8>>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = bytes
        .windows(begin.len())
        .position(|w| w == begin.as_bytes())
    else {
        return Ok(None);
    };
    let rest = &bytes[start..];
    let stop = rest
        .windows(end.len())
        .position(|w| w == end.as_bytes())
        .ok_or_else(|| KeyError::Malformed(format!("{label} PEM block without its END line")))?;
    let block = &rest[..stop + end.len()];
    let (_, der) = pkcs8::der::pem::decode_vec(block).map_err(|e| {
        KeyError::Malformed(format!(
            "{label} PEM block: {}",
            crate::material::der_words(&e.to_string())
        ))
    })?;
    Ok(Some(der))
}

/// Refuses RSA keys below 2048 or above 4096 bits by their modulus (`RSAPrivateKey` DER).
fn check_rsa_size(pkcs1: &[u8]) -> Result<(), KeyError> {
    use rsa::pkcs1::der::Decode as _;
    let key = rsa::pkcs1::RsaPrivateKey::from_der(pkcs1).map_err(|e| {
        KeyError::Malformed(format!(
            "not a readable RSA key ({})",
            crate::material::der_words(&e.to_string())
        ))
    })?;
    let modulus = key.modulus.as_bytes();
    let bits = match modulus.first() {
        Some(&b) => modulus.len() * 8 - b.leading_zeros() as usize,
        None => 0,
    };
    if !(2048..=4096).contains(&bits) {
        return Err(KeyError::RsaSize(bits));
    }
    Ok(())
}

fn rsa_from_pkcs1(der: &[u8]) -> Result<SigningKey, KeyError> {
    check_rsa_size(der)?;
    rsa_that_signs(RsaKeyPair::from_der(der))
}

/// An RSA key ring accepted, kept only if it can sign: ring checks each signature against the
/// public key, and a key whose parts do not agree fails there. Without this probe such a file
/// loaded and then aborted the process at the first signature (found by the `private_key`
/// fuzz target).
fn rsa_that_signs(k: Result<RsaKeyPair, ring::error::KeyRejected>) -> Result<SigningKey, KeyError> {
    let k = k.map_err(|e| KeyError::Malformed(format!("RSA key refused: {}", ring_words(&e))))?;
    let mut sig = vec![0u8; k.public().modulus_len()];
    k.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        b"iamra-bootstrap key check",
        &mut sig,
    )
    .map_err(|_| KeyError::Malformed("RSA key: its parts do not agree (it cannot sign)".into()))?;
    Ok(SigningKey::new(RsaKey(k)))
}

/// What `ring`'s reason for refusing a key means, in words.
pub(crate) fn ring_words(e: &ring::error::KeyRejected) -> String {
    match e.to_string().as_str() {
        "InvalidComponent" => "one of its numbers is out of range".into(),
        "InconsistentComponents" => "its parts do not agree with each other".into(),
        "InvalidEncoding" => "its encoding is not valid DER".into(),
        "PublicKeyIsMissing" => "its public key is missing".into(),
        "TooSmall" => "it is too small".into(),
        "TooLarge" => "it is too large".into(),
        "VersionNotSupported" => "its format version is not supported".into(),
        "WrongAlgorithm" => "it is not a key of the algorithm it claims".into(),
        other => format!("refused by the signer ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{ALG_ECDSA, ALG_RSA};

    const KAT_KEY: &[u8] = include_bytes!("../../tests/data/kat/cert-key.pem");

    #[test]
    fn loads_pkcs1_rsa_and_redacts_debug() {
        let k = SigningKey::from_pem_or_der(KAT_KEY).unwrap();
        assert_eq!(k.algorithm(), ALG_RSA);
        assert_eq!(k.describe(), "RSA-2048");
        assert_eq!(format!("{k:?}"), "SigningKey(RSA-2048, ** redacted **)");
    }

    #[test]
    fn ec_keys_sign_a_sha256_prehash_that_verifies() {
        use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA256_ASN1, UnparsedPublicKey};
        let rng = ring::rand::SystemRandom::new();
        for (alg, verify) in [
            (
                &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &ECDSA_P256_SHA256_ASN1,
            ),
            (
                &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                &ECDSA_P384_SHA256_ASN1,
            ),
        ] {
            let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let k = from_pkcs8(pkcs8.as_ref()).unwrap();
            assert_eq!(k.algorithm(), ALG_ECDSA);
            let msg = b"AWS4-X509-ECDSA-SHA256\n20240102T030405Z\n...";
            let sig = k.sign(msg).unwrap();
            UnparsedPublicKey::new(verify, k.public_key_bits())
                .verify(msg, &sig)
                .expect("signature over SHA-256 verifies");
        }
    }

    /// Found by `fuzz/fuzz_targets/private_key.rs`: an RSA PKCS#8 key that ring loads but cannot
    /// sign with used to abort the process at the first signature.
    #[test]
    fn an_rsa_key_that_cannot_sign_is_refused_at_load() {
        let der = include_bytes!("../../fuzz/corpus/private_key/crash-rsa-cannot-sign.der");
        let e = from_pkcs8(der).unwrap_err().to_string();
        assert!(e.contains("cannot sign"), "{e}");
        assert!(SigningKey::from_pem_or_der(der).is_err());
    }

    #[test]
    fn rejects_garbage_and_encrypted() {
        assert_eq!(
            SigningKey::from_pem_or_der(b"hello").unwrap_err(),
            KeyError::NotAKey
        );
        let enc = include_bytes!("../../tests/data/keys/p256.aes256-sha1.p8.pem");
        assert_eq!(
            SigningKey::from_pem_or_der(enc).unwrap_err(),
            KeyError::Encrypted
        );
        let k = SigningKey::load(enc, Some(&Secret::new("correct-horse"))).unwrap();
        assert_eq!(k.describe(), "EC P-256");
        let der = pkcs8::der::pem::decode_vec(enc).unwrap().1;
        let k = SigningKey::load(&der, Some(&Secret::new("correct-horse"))).unwrap();
        assert_eq!(k.describe(), "EC P-256", "DER encrypted PKCS#8");
        let e = SigningKey::load(enc, Some(&Secret::new("s3cr3t-value"))).unwrap_err();
        assert_eq!(e, KeyError::WrongPassword);
        assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e}");
    }

    #[test]
    fn legacy_pem_tss2_and_rsa_sizes_get_their_own_messages() {
        let legacy = include_bytes!("../../tests/data/keys/rsa2048.legacy.pem");
        let e = SigningKey::load(legacy, Some(&Secret::new("correct-horse"))).unwrap_err();
        assert_eq!(e, KeyError::LegacyEncryptedPem);
        assert!(
            e.to_string().contains("the private key is encrypted"),
            "{e}"
        );
        assert!(e.to_string().contains("openssl pkcs8 -topk8"), "{e}");
        let tss2 = b"-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n-----END TSS2 PRIVATE KEY-----\n";
        let e = SigningKey::from_pem_or_der(tss2).unwrap_err();
        assert!(
            e.to_string().contains("TPM") && e.to_string().contains("Vault"),
            "{e}"
        );
        let small = include_bytes!("../../tests/data/keys/rsa1024.pem");
        let e = SigningKey::from_pem_or_der(small).unwrap_err();
        assert_eq!(e, KeyError::RsaSize(1024));
        assert!(
            e.to_string().starts_with("unsupported key size: RSA-1024"),
            "{e}"
        );
    }
}
