//! Private keys: the [`Signer`] seam every key store implements, the [`SigningKey`] the rest
//! of the program holds, and what signing means per the X.509 SigV4 variant
//! (`docs/rolesanywhere-protocol.md` §3) and per `aws_signing_helper sign-string`.
//!
//! | key | `Authorization` algorithm | signature over the string to sign |
//! |---|---|---|
//! | RSA (2048–4096) | `AWS4-X509-RSA-SHA256` | RSASSA-PKCS1-v1_5 with SHA-256 |
//! | EC P-256 | `AWS4-X509-ECDSA-SHA256` | ECDSA over the SHA-256 digest, DER |
//! | EC P-384 | `AWS4-X509-ECDSA-SHA256` | ECDSA over the SHA-256 prehash, DER |
//! | ML-DSA-44/65/87 | `AWS4-X509-MLDSA` | pure ML-DSA, deterministic, empty context |
//!
//! `sign-string` may ask for SHA-384 or SHA-512 instead ([`Digest`]; an EC digest longer than
//! the curve is truncated to it, as FIPS 186 and Go do); ML-DSA always signs the message itself.
//!
//! Key stores, one file each, each turning its own reference into a [`SigningKey`]:
//! - [`file`]: key files, PEM or DER: PKCS#8, PKCS#1 RSA, SEC1 EC, ML-DSA ([`mldsa`]),
//!   encrypted PKCS#8 ([`encrypted`]); and [`pkcs12`] files (key and certificates together).
//! - [`pkcs11`]: keys in PKCS#11 tokens (`pkcs11:` URIs, [`pkcs11_uri`]); the `hardware`
//!   build only (modules are loaded with dlopen).
//! - [`tpm`]: TPM 2.0 keys (`TSS2 PRIVATE KEY` files), signed in the TPM; every build.
//!
//! [`StoreOptions`] carries what the hardware stores need (module, PIN, TPM, key password);
//! [`load_any`] sends a key file to the store that reads it. A new store is a new file here
//! implementing [`Signer`], plus its flags; no command looks inside a key. Key-type OIDs are
//! listed once, in [`oids`].
//!
//! Loading a key may derive it from a password (PBKDF2, scrypt, PKCS#12's KDF): [`within`] runs
//! such work on a thread of its own and gives up at the run's deadline with
//! [`KeyError::TimedOut`], so `--timeout` bounds it like every network call.

use std::fmt;
use std::time::{Duration, Instant};

use crate::secret::Secret;

pub(crate) mod ec;
pub(crate) mod encrypted;
pub(crate) mod file;
pub(crate) mod mldsa;
pub(crate) mod oids;
pub(crate) mod pkcs11;
pub(crate) mod pkcs11_uri;
pub(crate) mod pkcs12;
pub(crate) mod tpm;

/// Algorithm name for RSA keys.
pub(crate) const ALG_RSA: &str = "AWS4-X509-RSA-SHA256";
/// Algorithm name for EC keys, whatever the curve.
pub(crate) const ALG_ECDSA: &str = "AWS4-X509-ECDSA-SHA256";
pub(crate) use mldsa::ALG_MLDSA;

/// What a key is: the algorithm family and its size or curve. Stores report it; only this
/// module turns it into protocol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA with a modulus of this many bits.
    Rsa { bits: usize },
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// ML-DSA-44, -65 or -87 (FIPS 204).
    MlDsa44,
    /// ML-DSA-65.
    MlDsa65,
    /// ML-DSA-87.
    MlDsa87,
}

impl KeyKind {
    /// The `Authorization` algorithm for this key.
    pub(crate) fn algorithm(self) -> &'static str {
        match self {
            KeyKind::Rsa { .. } => ALG_RSA,
            KeyKind::EcP256 | KeyKind::EcP384 => ALG_ECDSA,
            KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87 => ALG_MLDSA,
        }
    }

    /// A short description (`RSA-2048`, `EC P-256`, `ML-DSA-65`), safe to log.
    pub(crate) fn describe(self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA-{bits}"),
            KeyKind::EcP256 => "EC P-256".into(),
            KeyKind::EcP384 => "EC P-384".into(),
            KeyKind::MlDsa44 => "ML-DSA-44".into(),
            KeyKind::MlDsa65 => "ML-DSA-65".into(),
            KeyKind::MlDsa87 => "ML-DSA-87".into(),
        }
    }

    /// ML-DSA signs the message itself, whatever digest is asked for.
    pub(crate) fn is_mldsa(self) -> bool {
        matches!(self, KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87)
    }
}

/// The digest a message is hashed with before an RSA or ECDSA signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Digest {
    /// SHA-256: what `CreateSession` uses.
    #[default]
    Sha256,
    /// SHA-384 (`sign-string --digest SHA384`).
    Sha384,
    /// SHA-512 (`sign-string --digest SHA512`).
    Sha512,
}

impl Digest {
    /// `message` hashed with this digest.
    pub(crate) fn hash(self, message: &[u8]) -> ring::digest::Digest {
        let alg = match self {
            Digest::Sha256 => &ring::digest::SHA256,
            Digest::Sha384 => &ring::digest::SHA384,
            Digest::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, message)
    }

    /// The DER `DigestInfo` prefix an RSA PKCS#1 v1.5 signature puts before the digest
    /// (RFC 8017, section 9.2): for stores that sign a prepared block (`CKM_RSA_PKCS`).
    #[cfg_attr(not(feature = "hardware"), allow(dead_code))]
    pub(crate) fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Digest::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Digest::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Digest::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// How to reach the hardware key stores: the PKCS#11 module and PIN, the TPM and its key
/// password.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreOptions {
    pub(crate) pkcs11: pkcs11::Pkcs11Options,
    pub(crate) tpm: tpm::TpmOptions,
}

/// Whether `bytes` hold a TPM-wrapped key (`-----BEGIN TSS2 PRIVATE KEY-----`).
pub(crate) fn is_tss2(bytes: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN TSS2 PRIVATE KEY-----";
    bytes.windows(BEGIN.len()).any(|w| w == BEGIN)
}

/// A key file of any store, given up at `deadline`: a TSS2 key goes to the TPM
/// ([`tpm::load`]), anything else to [`load_before`].
pub(crate) fn load_any(
    bytes: &[u8],
    password: Option<&Secret>,
    stores: &StoreOptions,
    deadline: Instant,
) -> Result<SigningKey, KeyError> {
    if is_tss2(bytes) {
        return tpm::load(bytes, &stores.tpm, deadline).map(SigningKey::new);
    }
    load_before(bytes, password, deadline)
}

/// The seam between the program and a key store: a key that can sign, whatever holds it (a
/// file in memory, a PKCS#11 token, a TPM). Implementations redact themselves: never print
/// key material in `Debug` or an error.
pub(crate) trait Signer: Send + Sync {
    /// The key's family and size.
    fn kind(&self) -> KeyKind;

    /// The public key as it stands in a certificate's `subjectPublicKey` BIT STRING: the
    /// `RSAPublicKey` DER for RSA, the uncompressed point for EC, the encoded key for ML-DSA.
    fn public_key_bits(&self) -> Vec<u8>;

    /// Signs `message`: RSASSA-PKCS1-v1_5 or ECDSA (DER) over its `digest`, or pure ML-DSA
    /// over the message itself (the digest ignored).
    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, KeyError>;
}

/// A key that can sign, from any store. `Debug` prints only its type.
pub(crate) struct SigningKey(Box<dyn Signer>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, ** redacted **)", self.describe())
    }
}

/// The helper's `SIGN_STRING_TEST_VERSION`.
const TEST_VERSION: &str = "1";

impl SigningKey {
    /// Wraps a store's key.
    pub(crate) fn new(signer: impl Signer + 'static) -> SigningKey {
        SigningKey(Box::new(signer))
    }

    /// A key file's bytes (PEM or DER, possibly encrypted): see [`file::load`].
    pub(crate) fn load(bytes: &[u8], password: Option<&Secret>) -> Result<SigningKey, KeyError> {
        file::load(bytes, password)
    }

    /// A key file's bytes without a password: see [`file::load`].
    pub(crate) fn from_pem_or_der(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        file::load(bytes, None)
    }

    /// A plain PKCS#8 `PrivateKeyInfo`: see [`file::from_pkcs8`].
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        file::from_pkcs8(der)
    }

    /// The key's family and size.
    pub(crate) fn kind(&self) -> KeyKind {
        self.0.kind()
    }

    /// The `Authorization` algorithm for this key.
    pub(crate) fn algorithm(&self) -> &'static str {
        self.kind().algorithm()
    }

    /// A short description (`RSA-2048`, `EC P-256`), safe to log.
    pub(crate) fn describe(&self) -> String {
        self.kind().describe()
    }

    /// See [`Signer::public_key_bits`].
    pub(crate) fn public_key_bits(&self) -> Vec<u8> {
        self.0.public_key_bits()
    }

    /// Whether the certificate `cert_der` holds this key's public key (false for a
    /// certificate that does not parse).
    pub(crate) fn matches_certificate(&self, cert_der: &[u8]) -> bool {
        use x509_parser::prelude::FromDer;
        x509_parser::certificate::X509Certificate::from_der(cert_der).is_ok_and(|(_, c)| {
            c.public_key().subject_public_key.data.as_ref() == self.public_key_bits().as_slice()
        })
    }

    /// The `CreateSession` signature of `string_to_sign` (SHA-256 for RSA and EC).
    pub(crate) fn sign(&self, string_to_sign: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.0.sign(string_to_sign, Digest::Sha256)
    }

    /// The signature of `message` over `digest` (see [`Signer::sign`]).
    pub(crate) fn sign_with(&self, digest: Digest, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.0.sign(message, digest)
    }

    /// `aws_signing_helper sign-string`'s fixed test message for this key:
    /// `"AWS Roles Anywhere Credential Helper Signing Test" || "1" || SHA256("IAM RA" || public
    /// key)`, the hash as raw bytes; no hash suffix for ML-DSA (the helper computes it only for
    /// RSA and ECDSA keys).
    pub(crate) fn helper_test_message(&self) -> Vec<u8> {
        let mut msg = b"AWS Roles Anywhere Credential Helper Signing Test".to_vec();
        msg.extend_from_slice(TEST_VERSION.as_bytes());
        if !self.kind().is_mldsa() {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            ctx.update(b"IAM RA");
            ctx.update(&self.public_key_bits());
            msg.extend_from_slice(ctx.finish().as_ref());
        }
        msg
    }
}

/// Why a key could not be loaded or used.
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
    /// A key derivation above the caps (iterations, memory): what it asks and the cap.
    TooCostly(String),
    /// OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` PEM.
    LegacyEncryptedPem,
    /// A key held by a key store (PKCS#11 URI, TPM handle, TSS2 PEM): what it is.
    KeyStore(String),
    /// An RSA key outside 2048–4096 bits: its size.
    RsaSize(usize),
    /// A key type or curve this tool does not sign with.
    Unsupported(String),
    /// A block of the right type that does not parse, or a key that is not a valid key.
    Malformed(String),
    /// Loading the key (deriving it from its password) did not end before the deadline.
    TimedOut {
        /// How long it ran.
        waited: Duration,
    },
    /// The key store could not sign.
    Signing(String),
    /// A token or TPM refused or failed (wrong PIN, locked, no module, no TPM…): the whole
    /// line, with what to do.
    Hardware(String),
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
            KeyError::TooCostly(what) => write!(
                f,
                "its password-based encryption asks for {what}: re-encrypt it with the defaults of `{}`",
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
            KeyError::TimedOut { waited } => write!(
                f,
                "loading the key (deriving it from its password) did not finish within the --timeout ({:.1} s): re-encrypt it with fewer KDF iterations (`{}`) or raise --timeout",
                waited.as_secs_f64(),
                encrypted::CONVERT_TO_PKCS8
            ),
            KeyError::Signing(why) => write!(f, "the key could not sign: {why}"),
            KeyError::Hardware(line) => f.write_str(line),
        }
    }
}

impl std::error::Error for KeyError {}

/// Runs `load` (CPU-bound key work: a password-based key derivation, a key check) on a thread
/// of its own and waits for it until `deadline`: past it, [`KeyError::TimedOut`]. The thread is
/// left to finish on its own (the run is about to end with the error; the key-derivation caps
/// in [`encrypted`] bound how long it can run).
pub(crate) fn within<T: Send + 'static>(
    deadline: Instant,
    load: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, KeyError> {
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("key-load".into())
        .spawn(move || {
            let _ = tx.send(load());
        })
        .map_err(|e| KeyError::Signing(format!("cannot start the key loader: {e}")))?;
    match rx.recv_timeout(deadline.saturating_duration_since(start)) {
        Ok(r) => r,
        Err(_) => Err(KeyError::TimedOut {
            waited: start.elapsed(),
        }),
    }
}

/// [`SigningKey::load`] of a key file's bytes, given up at `deadline` (see [`within`]).
pub(crate) fn load_before(
    bytes: &[u8],
    password: Option<&Secret>,
    deadline: Instant,
) -> Result<SigningKey, KeyError> {
    let bytes = zeroize::Zeroizing::new(bytes.to_vec());
    let password = password.cloned();
    within(deadline, move || file::load(&bytes, password.as_ref()))
}

/// A key reference as it may be shown: a `pkcs11:` URI's `pin-value` (and `pin-source`, a
/// path that may say too much) replaced by `**redacted**`; anything else unchanged.
pub(crate) fn redact_reference(reference: &str) -> String {
    if !reference.starts_with("pkcs11:") {
        return reference.to_string();
    }
    let mut out = String::with_capacity(reference.len());
    let mut rest = reference;
    while let Some(i) = rest.find("pin-value=") {
        let start = i + "pin-value=".len();
        out.push_str(&rest[..start]);
        out.push_str("**redacted**");
        let tail = &rest[start..];
        let end = tail.find([';', '&', '?']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAT_KEY: &[u8] = include_bytes!("../tests/data/kat/cert-key.pem");
    const KAT_CERT: &[u8] = include_bytes!("../tests/data/kat/cert.pem");

    #[test]
    fn the_helper_test_message_layout() {
        let key = SigningKey::from_pem_or_der(KAT_KEY).unwrap();
        let m = key.helper_test_message();
        assert!(m.starts_with(b"AWS Roles Anywhere Credential Helper Signing Test1"));
        assert_eq!(m.len(), 50 + 32);
    }

    #[test]
    fn a_key_matches_its_certificate() {
        let key = SigningKey::from_pem_or_der(KAT_KEY).unwrap();
        let der = crate::material::parse_certificates(KAT_CERT, "kat")
            .unwrap()
            .remove(0);
        assert!(key.matches_certificate(&der));
        assert!(!key.matches_certificate(b"junk"));
    }

    #[test]
    fn every_digest_verifies() {
        use ring::signature as rs;
        let rng = ring::rand::SystemRandom::new();
        let p256 =
            rs::EcdsaKeyPair::generate_pkcs8(&rs::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let p384 =
            rs::EcdsaKeyPair::generate_pkcs8(&rs::ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
        let keys = [
            SigningKey::from_pem_or_der(KAT_KEY).unwrap(),
            SigningKey::from_pkcs8(p256.as_ref()).unwrap(),
            SigningKey::from_pkcs8(p384.as_ref()).unwrap(),
        ];
        for key in &keys {
            let msg = key.helper_test_message();
            for d in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
                let sig = key.sign_with(d, &msg).unwrap();
                let alg: &dyn rs::VerificationAlgorithm = match (key.kind(), d) {
                    (KeyKind::Rsa { .. }, Digest::Sha256) => &rs::RSA_PKCS1_2048_8192_SHA256,
                    (KeyKind::Rsa { .. }, Digest::Sha384) => &rs::RSA_PKCS1_2048_8192_SHA384,
                    (KeyKind::Rsa { .. }, Digest::Sha512) => &rs::RSA_PKCS1_2048_8192_SHA512,
                    (KeyKind::EcP256, Digest::Sha256) => &rs::ECDSA_P256_SHA256_ASN1,
                    (KeyKind::EcP256, Digest::Sha384) => &rs::ECDSA_P256_SHA384_ASN1,
                    (KeyKind::EcP384, Digest::Sha256) => &rs::ECDSA_P384_SHA256_ASN1,
                    (KeyKind::EcP384, Digest::Sha384) => &rs::ECDSA_P384_SHA384_ASN1,
                    _ => continue, // ring verifies no ECDSA with SHA-512
                };
                rs::UnparsedPublicKey::new(alg, key.public_key_bits())
                    .verify(&msg, &sig)
                    .unwrap_or_else(|_| panic!("{} {d:?}", key.describe()));
            }
        }
    }

    #[test]
    fn a_load_that_outlives_the_deadline_ends_at_it() {
        let t = Instant::now();
        let e = within(Instant::now() + Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(e, KeyError::TimedOut { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(e.to_string().contains("--timeout"), "{e}");
        assert_eq!(
            within(Instant::now() + Duration::from_secs(5), || Ok(7)).unwrap(),
            7
        );
    }

    #[test]
    fn pkcs11_pins_are_redacted() {
        assert_eq!(
            redact_reference("pkcs11:token=a;object=k?pin-value=1234&module-name=x"),
            "pkcs11:token=a;object=k?pin-value=**redacted**&module-name=x"
        );
        assert_eq!(
            redact_reference("pkcs11:object=k;pin-value=s3cr3t"),
            "pkcs11:object=k;pin-value=**redacted**"
        );
        assert_eq!(redact_reference("/etc/key.pem"), "/etc/key.pem");
    }
}
