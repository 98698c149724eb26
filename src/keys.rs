//! Private keys that sign `CreateSession`: loading (PKCS#8, encrypted PKCS#8, PKCS#1 RSA, SEC1
//! EC; PEM or DER; PKCS#12 in [`pkcs12`]) and signing per the X.509 SigV4 variant
//! (`docs/rolesanywhere-protocol.md` §3).
//!
//! | key | algorithm | signature over the string to sign |
//! |---|---|---|
//! | RSA (2048–4096) | `AWS4-X509-RSA-SHA256` | RSASSA-PKCS1-v1_5 with SHA-256 (`ring`) |
//! | EC P-256 | `AWS4-X509-ECDSA-SHA256` | ECDSA with SHA-256, DER (`ring`) |
//! | EC P-384 | `AWS4-X509-ECDSA-SHA256` | ECDSA over the SHA-256 prehash, DER (`p384`) |
//! | ML-DSA-44/65/87 | `AWS4-X509-MLDSA` | pure ML-DSA, deterministic, empty context ([`mldsa`]) |
//!
//! Refused with a reason and the fix: RSA below 2048 or above 4096 bits, other curves and key
//! types, PBES1 and OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` PEM (with the `openssl` command
//! that converts them, see [`encrypted`]), TSS2 (TPM-wrapped) keys and key-store URIs
//! (`pkcs11:`, `handle:`).
//!
//! `ring` signs P-384 only with SHA-384, which Roles Anywhere rejects, so P-384 goes through
//! RustCrypto's prehash signer (RFC 6979 nonces). P-256 stays on `ring`, several times faster
//! than RustCrypto's constant-time arithmetic (most of `init`'s CPU time otherwise). SEC1
//! (`EC PRIVATE KEY`) files are read with RustCrypto and handed to `ring` as PKCS#8.

use std::fmt;

use p256::pkcs8::EncodePrivateKey;
use p256::pkcs8::{DecodePrivateKey, ObjectIdentifier, PrivateKeyInfo};
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use signature::hazmat::PrehashSigner;

use crate::secret::Secret;

pub(crate) mod encrypted;
pub(crate) mod mldsa;
pub(crate) mod pkcs12;

pub(crate) use mldsa::ALG_MLDSA;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Algorithm name for RSA keys.
pub(crate) const ALG_RSA: &str = "AWS4-X509-RSA-SHA256";
/// Algorithm name for EC keys, whatever the curve.
pub(crate) const ALG_ECDSA: &str = "AWS4-X509-ECDSA-SHA256";

/// A key that can sign a string to sign. `Debug` prints only its type.
pub(crate) enum SigningKey {
    /// RSA, any size ring accepts (2048–8192 bits).
    Rsa(RsaKeyPair),
    /// EC P-256.
    P256(EcdsaKeyPair),
    /// EC P-384.
    P384(p384::ecdsa::SigningKey),
    /// ML-DSA-44/65/87.
    MlDsa(mldsa::MlDsaKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, ** redacted **)", self.describe())
    }
}

/// Why a key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// No private key PEM block, and not DER either.
    NotAKey,
    /// An encrypted key, and no password was given.
    Encrypted,
    /// The password does not decrypt the key (or the file is damaged).
    WrongPassword,
    /// A PKCS#12 file whose MAC the empty password does not open.
    Pkcs12NeedsPassword,
    /// An encryption scheme this tool does not decrypt (PBES1, PKCS#12 PBE, …): its name.
    UnsupportedEncryption(String),
    /// OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` PEM.
    LegacyEncryptedPem,
    /// A key held by a key store (PKCS#11 URI, TPM handle, TSS2 PEM): what it is.
    KeyStore(String),
    /// An RSA key outside 2048–4096 bits: its size.
    RsaSize(usize),
    /// A key type or curve this tool does not sign with.
    Unsupported(String),
    /// A block of the right type that does not parse.
    Malformed(String),
}

/// How to pass the password of an encrypted key.
const PASSWORD_HINT: &str = "pass its password with --pkcs8-password-file FILE (or IAMRA_PKCS8_PASSWORD, or --pkcs8-password)";

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotAKey => f.write_str(
                "no private key found: expected a PEM block PRIVATE KEY, ENCRYPTED PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY (or DER)",
            ),
            KeyError::Encrypted => write!(f, "the private key is encrypted: {PASSWORD_HINT}"),
            KeyError::WrongPassword => f.write_str(
                "the password does not decrypt it (wrong password, or a damaged file): check the password given with --pkcs8-password-file, IAMRA_PKCS8_PASSWORD or --pkcs8-password",
            ),
            KeyError::Pkcs12NeedsPassword => write!(
                f,
                "the PKCS#12 file is protected by a password: {PASSWORD_HINT}"
            ),
            KeyError::UnsupportedEncryption(scheme) => write!(
                f,
                "the private key is encrypted with {scheme}, which is not supported: convert it to PBES2 with `{}` and pass the new password",
                encrypted::CONVERT_TO_PKCS8
            ),
            KeyError::LegacyEncryptedPem => write!(
                f,
                "the private key is encrypted in OpenSSL's legacy PEM format (Proc-Type: 4,ENCRYPTED), which is not supported: convert it to encrypted PKCS#8 with `{}` and pass the new password",
                encrypted::CONVERT_TO_PKCS8
            ),
            KeyError::KeyStore(what) => write!(
                f,
                "{what} is not supported here: export the key and certificate to files (PEM, PKCS#8 or PKCS#12), or get the certificate from Vault"
            ),
            KeyError::RsaSize(bits) => write!(
                f,
                "unsupported key size: RSA-{bits}; Roles Anywhere signing here takes RSA keys of 2048 to 4096 bits: issue a new key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) or use EC P-256/P-384"
            ),
            KeyError::Unsupported(what) => write!(
                f,
                "unsupported key type: {what}; use RSA (2048-4096 bits), EC P-256/P-384 or ML-DSA-44/65/87"
            ),
            KeyError::Malformed(why) => write!(f, "malformed private key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl SigningKey {
    /// Reads a private key from PEM (PKCS#8, PKCS#1, SEC1) or DER (PKCS#8, PKCS#1, SEC1).
    pub(crate) fn from_pem_or_der(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        Self::load(bytes, None)
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
            return Self::from_pkcs8(&plain);
        }
        let mut pem_found = false;
        for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
            let Ok((kind, der)) = item else { break };
            pem_found = true;
            let der = match kind {
                SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
                SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
                SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
                _ => continue,
            };
            return Self::from_der(&der);
        }
        if pem_found || bytes.starts_with(b"-----") {
            return Err(KeyError::NotAKey);
        }
        // DER: an encrypted PKCS#8, else each plain container in turn.
        if encrypted::is_encrypted_pkcs8(bytes) {
            let plain = encrypted::decrypt_pkcs8(bytes, password)?;
            return Self::from_pkcs8(&plain);
        }
        let der = bytes.to_vec();
        for candidate in [
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.clone())),
            PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.clone())),
            PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        ] {
            match Self::from_der(&candidate) {
                Err(KeyError::Malformed(_)) => continue,
                other => return other,
            }
        }
        Err(KeyError::NotAKey)
    }

    /// Loads a key from a typed DER container.
    pub(crate) fn from_der(der: &PrivateKeyDer<'_>) -> Result<SigningKey, KeyError> {
        match der {
            PrivateKeyDer::Pkcs8(k) => Self::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => rsa_from_pkcs1(k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(k) => {
                let der = k.secret_sec1_der();
                if let Ok(sk) = p256::SecretKey::from_sec1_der(der) {
                    let pkcs8 = sk
                        .to_pkcs8_der()
                        .map_err(|e| KeyError::Malformed(format!("P-256 key: {e}")))?;
                    p256_from_pkcs8(pkcs8.as_bytes())
                } else if let Ok(sk) = p384::SecretKey::from_sec1_der(der) {
                    Ok(SigningKey::P384(sk.into()))
                } else if let Some(curve) = sec1_named_curve(der) {
                    Err(KeyError::Unsupported(format!(
                        "EC curve {}",
                        curve_name(&curve)
                    )))
                } else {
                    Err(KeyError::Malformed("not a SEC1 EC private key".into()))
                }
            }
            _ => Err(KeyError::NotAKey),
        }
    }

    /// Loads a PKCS#8 `PrivateKeyInfo`, choosing the signer by its algorithm.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let info = PrivateKeyInfo::try_from(der)
            .map_err(|e| KeyError::Malformed(format!("PKCS#8: {e}")))?;
        let oid = info.algorithm.oid;
        if oid == OID_RSA {
            check_rsa_size(info.private_key)?;
            return rsa_that_signs(RsaKeyPair::from_pkcs8(der));
        }
        if let Some(key) =
            mldsa::MlDsaKey::from_pkcs8_private_key(&oid.to_string(), info.private_key)
        {
            return key.map(SigningKey::MlDsa);
        }
        if oid != OID_EC {
            return Err(KeyError::Unsupported(algorithm_name(&oid)));
        }
        match info.algorithm.parameters_oid() {
            Ok(c) if c == OID_P256 => p256_from_pkcs8(der),
            Ok(c) if c == OID_P384 => p384::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(SigningKey::P384)
                .map_err(|e| KeyError::Malformed(format!("P-384 key: {e}"))),
            Ok(c) => Err(KeyError::Unsupported(format!(
                "EC curve {}",
                curve_name(&c)
            ))),
            Err(_) => Err(KeyError::Malformed("EC key without a named curve".into())),
        }
    }

    /// The `Authorization` algorithm for this key.
    pub(crate) fn algorithm(&self) -> &'static str {
        match self {
            SigningKey::Rsa(_) => ALG_RSA,
            SigningKey::P256(_) | SigningKey::P384(_) => ALG_ECDSA,
            SigningKey::MlDsa(_) => ALG_MLDSA,
        }
    }

    /// A short description (`RSA-2048`, `EC P-256`), safe to log.
    pub(crate) fn describe(&self) -> String {
        match self {
            SigningKey::Rsa(k) => format!("RSA-{}", k.public().modulus_len() * 8),
            SigningKey::P256(_) => "EC P-256".into(),
            SigningKey::P384(_) => "EC P-384".into(),
            SigningKey::MlDsa(k) => k.describe().into(),
        }
    }

    /// The public key as it stands in a certificate's `subjectPublicKey` BIT STRING: the
    /// `RSAPublicKey` DER for RSA, the uncompressed point for EC, the encoded key for ML-DSA.
    pub(crate) fn public_key_bits(&self) -> Vec<u8> {
        match self {
            SigningKey::Rsa(k) => k.public().as_ref().to_vec(),
            SigningKey::P256(k) => k.public_key().as_ref().to_vec(),
            SigningKey::P384(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            SigningKey::MlDsa(k) => k.public_key_bits(),
        }
    }

    /// Signs `message` (the string to sign): RSA PKCS#1 v1.5 SHA-256, ECDSA over its
    /// SHA-256 digest in DER whatever the curve, or pure ML-DSA over the message itself.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .expect("RSA signing with a loaded key and a correctly sized buffer");
                sig
            }
            SigningKey::P256(k) => k
                .sign(&ring::rand::SystemRandom::new(), message)
                .expect("P-256 signing with a loaded key")
                .as_ref()
                .to_vec(),
            SigningKey::P384(k) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, message);
                let sig: p384::ecdsa::Signature = k
                    .sign_prehash(digest.as_ref())
                    .expect("a 32-byte prehash is valid for P-384");
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::MlDsa(k) => k.sign(message),
        }
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
    let (_, der) = pkcs8::der::pem::decode_vec(block)
        .map_err(|e| KeyError::Malformed(format!("{label} PEM block: {e}")))?;
    Ok(Some(der))
}

/// Refuses RSA keys below 2048 or above 4096 bits by their modulus (`RSAPrivateKey` DER).
fn check_rsa_size(pkcs1: &[u8]) -> Result<(), KeyError> {
    use rsa::pkcs1::der::Decode as _;
    let key = rsa::pkcs1::RsaPrivateKey::from_der(pkcs1)
        .map_err(|e| KeyError::Malformed(format!("RSA key: {e}")))?;
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
    let k = k.map_err(|e| KeyError::Malformed(format!("RSA key: {e}")))?;
    let mut sig = vec![0u8; k.public().modulus_len()];
    k.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        b"iamra-bootstrap key check",
        &mut sig,
    )
    .map_err(|_| KeyError::Malformed("RSA key: its parts do not agree (it cannot sign)".into()))?;
    Ok(SigningKey::Rsa(k))
}

fn p256_from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        der,
        &ring::rand::SystemRandom::new(),
    )
    .map(SigningKey::P256)
    .map_err(|e| KeyError::Malformed(format!("P-256 key: {e}")))
}

/// The named-curve OID inside a SEC1 `ECPrivateKey`, if any.
fn sec1_named_curve(der: &[u8]) -> Option<ObjectIdentifier> {
    use sec1::der::Decode;
    let key = sec1::EcPrivateKey::from_der(der).ok()?;
    key.parameters.and_then(|p| p.named_curve())
}

fn curve_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => other.into(),
    }
}

fn algorithm_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS".into(),
        "1.2.840.10040.4.1" => "DSA".into(),
        other => format!("algorithm {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAT_KEY: &[u8] = include_bytes!("../tests/data/kat/cert-key.pem");

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
            let k = SigningKey::from_pkcs8(pkcs8.as_ref()).unwrap();
            assert_eq!(k.algorithm(), ALG_ECDSA);
            let msg = b"AWS4-X509-ECDSA-SHA256\n20240102T030405Z\n...";
            let sig = k.sign(msg);
            UnparsedPublicKey::new(verify, k.public_key_bits())
                .verify(msg, &sig)
                .expect("signature over SHA-256 verifies");
        }
    }

    /// Found by `fuzz/fuzz_targets/private_key.rs`: an RSA PKCS#8 key that ring loads but cannot
    /// sign with used to abort the process at the first signature.
    #[test]
    fn an_rsa_key_that_cannot_sign_is_refused_at_load() {
        let der = include_bytes!("../fuzz/corpus/private_key/crash-rsa-cannot-sign.der");
        let e = SigningKey::from_pkcs8(der).unwrap_err().to_string();
        assert!(e.contains("cannot sign"), "{e}");
        assert!(SigningKey::from_pem_or_der(der).is_err());
    }

    #[test]
    fn rejects_garbage_and_encrypted() {
        assert_eq!(
            SigningKey::from_pem_or_der(b"hello").unwrap_err(),
            KeyError::NotAKey
        );
        let enc = include_bytes!("../tests/data/keys/p256.aes256-sha1.p8.pem");
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
        let legacy = include_bytes!("../tests/data/keys/rsa2048.legacy.pem");
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
        let small = include_bytes!("../tests/data/keys/rsa1024.pem");
        let e = SigningKey::from_pem_or_der(small).unwrap_err();
        assert_eq!(e, KeyError::RsaSize(1024));
        assert!(
            e.to_string().starts_with("unsupported key size: RSA-1024"),
            "{e}"
        );
    }
}
