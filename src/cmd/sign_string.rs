//! `sign-string`: `aws_signing_helper sign-string`, for checking a key and digest offline.
//!
//! Contract (the helper's `cmd/sign_string.go` and README, read not copied): it signs its own
//! fixed test message, never stdin:
//! `"AWS Roles Anywhere Credential Helper Signing Test" || "1" || SHA256("IAM RA" || public key)`,
//! the public key being the uncompressed point (EC) or the `RSAPublicKey` DER (RSA), the hash
//! appended as raw bytes. The signature is RSASSA-PKCS1-v1_5 or ECDSA (DER `SEQUENCE{r,s}`) over
//! the message hashed with `--digest` (`SHA256` default, `SHA384`, `SHA512`; an EC digest longer
//! than the curve is truncated to it, as FIPS 186 and Go do). `--format json` (default) prints
//! the lower-case hex signature as a JSON string, `text` the bare hex, `bin` the raw bytes; no
//! trailing newline. `--certificate`, when given, must hold the key's public key.

use std::io::Write;

use ring::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use signature::hazmat::PrehashSigner;

use crate::cli::{self, SignFormat, SignStringArgs};
use crate::config::ConfigError;
use crate::error::Error;
use crate::keys::{self, SigningKey};
use crate::material::{self, MaterialError};
use crate::secret::Secret;

/// The helper's `SIGN_STRING_TEST_VERSION`.
const TEST_VERSION: &str = "1";

/// The fixed message for `key`: the hash suffix of its public key bits for RSA and EC; none
/// for ML-DSA (the helper computes it only for RSA and ECDSA keys).
pub(crate) fn fixed_message(key: &SigningKey) -> Vec<u8> {
    let mut msg = b"AWS Roles Anywhere Credential Helper Signing Test".to_vec();
    msg.extend_from_slice(TEST_VERSION.as_bytes());
    if !matches!(key, SigningKey::MlDsa(_)) {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"IAM RA");
        ctx.update(&key.public_key_bits());
        msg.extend_from_slice(ctx.finish().as_ref());
    }
    msg
}

/// The digest the message is hashed with (the domain's own, not clap's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

impl From<cli::SignDigest> for Digest {
    fn from(d: cli::SignDigest) -> Self {
        match d {
            cli::SignDigest::Sha256 => Digest::Sha256,
            cli::SignDigest::Sha384 => Digest::Sha384,
            cli::SignDigest::Sha512 => Digest::Sha512,
        }
    }
}

fn digest(d: Digest, message: &[u8]) -> ring::digest::Digest {
    let alg = match d {
        Digest::Sha256 => &ring::digest::SHA256,
        Digest::Sha384 => &ring::digest::SHA384,
        Digest::Sha512 => &ring::digest::SHA512,
    };
    ring::digest::digest(alg, message)
}

/// Signs `message` with the key in `key_bytes` (already loaded as `key`, which says its type)
/// and `d`. ML-DSA signs the message itself (no digest, as the helper does); SHA-256 is the
/// key's own signature; SHA-384/512 read the key again from its plain DER (`password`
/// decrypts an encrypted PKCS#8 key).
fn sign(
    key: &SigningKey,
    key_bytes: &[u8],
    password: Option<&Secret>,
    d: Digest,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    if matches!(key, SigningKey::MlDsa(_)) || d == Digest::Sha256 {
        return Ok(key.sign(message));
    }
    match key {
        SigningKey::MlDsa(_) => Ok(key.sign(message)),
        SigningKey::Rsa(_) => {
            let pair = match private_key_der(key_bytes, password)? {
                PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
                PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
                _ => return Err("not an RSA key".into()),
            }
            .map_err(|e| format!("RSA key: {e}"))?;
            let alg = match d {
                Digest::Sha256 => &RSA_PKCS1_SHA256,
                Digest::Sha384 => &RSA_PKCS1_SHA384,
                Digest::Sha512 => &RSA_PKCS1_SHA512,
            };
            let mut sig = vec![0u8; pair.public().modulus_len()];
            pair.sign(alg, &ring::rand::SystemRandom::new(), message, &mut sig)
                .map_err(|e| format!("RSA signing failed: {e}"))?;
            Ok(sig)
        }
        SigningKey::P256(_) => {
            let sk = match private_key_der(key_bytes, password)? {
                PrivateKeyDer::Pkcs8(k) => {
                    use p256::pkcs8::DecodePrivateKey;
                    p256::SecretKey::from_pkcs8_der(k.secret_pkcs8_der())
                        .map_err(|e| format!("P-256 key: {e}"))?
                }
                PrivateKeyDer::Sec1(k) => p256::SecretKey::from_sec1_der(k.secret_sec1_der())
                    .map_err(|e| format!("P-256 key: {e}"))?,
                _ => return Err("not an EC key".into()),
            };
            let sig: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(sk)
                .sign_prehash(digest(d, message).as_ref())
                .map_err(|e| format!("P-256 signing failed: {e}"))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        SigningKey::P384(k) => {
            let sig: p384::ecdsa::Signature = k
                .sign_prehash(digest(d, message).as_ref())
                .map_err(|e| format!("P-384 signing failed: {e}"))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
    }
}

/// The `subjectPublicKey` bits of a certificate.
fn leaf_public_key_bits(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// The typed DER of a PEM or DER private key file (an encrypted PKCS#8 key decrypted).
fn private_key_der(
    bytes: &[u8],
    password: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, String> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    let encrypted = match keys::pem_block(bytes, "ENCRYPTED PRIVATE KEY") {
        Ok(Some(der)) => Some(der),
        Ok(None) if keys::encrypted::is_encrypted_pkcs8(bytes) => Some(bytes.to_vec()),
        Ok(None) => None,
        Err(e) => return Err(e.to_string()),
    };
    if let Some(der) = encrypted {
        let plain = keys::encrypted::decrypt_pkcs8(&der, password).map_err(|e| e.to_string())?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.to_vec(),
        )));
    }
    if let Ok(k) = PrivateKeyDer::from_pem_slice(bytes) {
        return Ok(k);
    }
    PrivateKeyDer::try_from(bytes.to_vec()).map_err(|e| format!("unreadable key: {e}"))
}

/// How long `sign-string` waits for its key file (a FIFO with no writer, say).
const SIGN_STRING_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the command.
pub(crate) fn run(args: SignStringArgs) -> Result<(), Error> {
    let path = args.key.private_key.as_ref().ok_or_else(|| {
        ConfigError(
            "missing --private-key: the key file to sign the helper's test string with".into(),
        )
    })?;
    // An offline command with no --timeout: a fixed bound, as for every other read.
    let deadline = std::time::Instant::now() + SIGN_STRING_READ_TIMEOUT;
    let bytes = crate::bounded::read_file(path, crate::limits::MAX_PRIVATE_KEY_FILE, deadline)
        .map_err(|e| MaterialError::Read {
            what: "private key",
            path: path.clone(),
            source: e.into_io(),
        })?;
    let origin = format!("private key {}", path.display());
    let password = crate::config::key_password(&args.key, deadline)?;
    let key = SigningKey::load(&bytes, password.as_ref()).map_err(|source| MaterialError::Key {
        origin: origin.clone(),
        source,
    })?;
    if let Some(cert) = &args.cert.certificate {
        let der = std::fs::read(cert).map_err(|source| MaterialError::Read {
            what: "certificate",
            path: cert.clone(),
            source,
        })?;
        let leaf = material::parse_certificates(&der, &cert.display().to_string())?.remove(0);
        if leaf_public_key_bits(&leaf).as_deref() != Some(key.public_key_bits().as_slice()) {
            return Err(ConfigError(format!(
                "the private key {} does not belong to the certificate {}; pass the matching pair",
                path.display(),
                cert.display()
            ))
            .into());
        }
    }
    let message = fixed_message(&key);
    if args.debug {
        eprintln!(
            "signing the fixed string \"AWS Roles Anywhere Credential Helper Signing Test\" || SIGN_STRING_TEST_VERSION || SHA256(\"IAM RA\" || PUBLIC_KEY_BYTE_ARRAY) with {} and {:?}",
            key.describe(),
            args.digest
        );
    }
    let sig = sign(
        &key,
        &bytes,
        password.as_ref(),
        args.digest.into(),
        &message,
    )
    .map_err(|why| MaterialError::Key {
        origin,
        source: crate::keys::KeyError::Malformed(why),
    })?;
    let out = match args.format {
        SignFormat::Json => format!("\"{}\"", hex::encode(&sig)).into_bytes(),
        SignFormat::Text => hex::encode(&sig).into_bytes(),
        SignFormat::Bin => sig,
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = include_bytes!("../../tests/data/kat/cert-key.pem");

    #[test]
    fn message_layout() {
        let key = SigningKey::from_pem_or_der(KEY).unwrap();
        let m = fixed_message(&key);
        assert!(m.starts_with(b"AWS Roles Anywhere Credential Helper Signing Test1"));
        assert_eq!(m.len(), 50 + 32);
    }

    #[test]
    fn every_digest_verifies() {
        let key = SigningKey::from_pem_or_der(KEY).unwrap();
        let msg = fixed_message(&key);
        for d in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
            let sig = sign(&key, KEY, None, d, &msg).unwrap();
            let (alg, pk): (&dyn ring::signature::VerificationAlgorithm, _) = match (&key, d) {
                (SigningKey::Rsa(_), Digest::Sha256) => (
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    key.public_key_bits(),
                ),
                (SigningKey::Rsa(_), Digest::Sha384) => (
                    &ring::signature::RSA_PKCS1_2048_8192_SHA384,
                    key.public_key_bits(),
                ),
                (SigningKey::Rsa(_), Digest::Sha512) => (
                    &ring::signature::RSA_PKCS1_2048_8192_SHA512,
                    key.public_key_bits(),
                ),
                (SigningKey::P256(_), Digest::Sha256) => (
                    &ring::signature::ECDSA_P256_SHA256_ASN1,
                    key.public_key_bits(),
                ),
                (SigningKey::P256(_), Digest::Sha384) => (
                    &ring::signature::ECDSA_P256_SHA384_ASN1,
                    key.public_key_bits(),
                ),
                (SigningKey::P384(_), Digest::Sha384) => (
                    &ring::signature::ECDSA_P384_SHA384_ASN1,
                    key.public_key_bits(),
                ),
                (SigningKey::P384(_), Digest::Sha256) => (
                    &ring::signature::ECDSA_P384_SHA256_ASN1,
                    key.public_key_bits(),
                ),
                _ => continue,
            };
            ring::signature::UnparsedPublicKey::new(alg, &pk)
                .verify(&msg, &sig)
                .unwrap();
        }
    }
}
