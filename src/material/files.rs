//! Certificate material from files, as `aws_signing_helper` takes them.
//!
//! Contract (`--certificate`, `--intermediates`, `--private-key`, `--pkcs8-password[-file]`):
//! - `--certificate` + `--private-key`: the leaf in PEM or DER (a PEM bundle's further
//!   certificates are intermediates), the key in any form [`crate::keys::SigningKey::load`]
//!   reads (encrypted PKCS#8 with the password).
//! - `--certificate` alone: a PKCS#12 file (DER; the password, empty by default as in the
//!   helper, opens it; the chain is inside, so `--intermediates` is refused as the helper does),
//!   or one PEM file holding the key and the certificates. In both, the leaf is the certificate
//!   whose public key is the key's; every other certificate is an intermediate.
//! - Key-store references (`pkcs11:` URIs, `handle:` TPM handles) are refused with advice; a
//!   URI is named with its `pin-value` redacted ([`crate::keys::redact_reference`]).
//! - A PKCS#12 file given as `--certificate` with `--private-key` is named as PKCS#12, with
//!   "drop --private-key"; a refused leaf without a subject is named by its file and position.
//! - Every file is read through [`crate::bounded`] and every key loaded within the deadline
//!   ([`crate::keys::load_before`], [`crate::keys::pkcs12::load_before`]).
//!
//! The password is a [`Secret`]: it is never in a message.

use std::path::Path;
use std::time::Instant;

use ::time::OffsetDateTime;
use x509_parser::prelude::*;

use super::{Identity, MaterialError, parse_certificates, read_input as read};
use crate::keys::{self, KeyError, SigningKey, pkcs12};
use crate::limits::{MAX_CERTIFICATE_FILE, MAX_PRIVATE_KEY_FILE};
use crate::secret::Secret;

/// PEM labels of private keys: a `--certificate` file holding one is a combined file.
const KEY_LABELS: [&str; 5] = [
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN TSS2 PRIVATE KEY-----",
];

/// A `pkcs11:` or `handle:` reference instead of a file: refused with advice (the reference
/// is named with its PIN redacted: [`crate::keys::redact_reference`]).
fn key_store_reference(path: &Path) -> Option<KeyError> {
    let s = path.to_str()?;
    if s.starts_with("pkcs11:") {
        Some(KeyError::KeyStore(
            "a PKCS#11 URI (pkcs11:…, a key in a token or HSM)".into(),
        ))
    } else if s.starts_with("handle:") {
        Some(KeyError::KeyStore(
            "a TPM key handle (handle:…, a key inside a TPM)".into(),
        ))
    } else {
        None
    }
}

fn key_error(origin: String) -> impl FnOnce(KeyError) -> MaterialError {
    move |source| MaterialError::Key { origin, source }
}

/// Loads and checks `--certificate`, `--intermediates` and `--private-key` (optional: see the
/// module docs), decrypting with `password` where needed; each file is read up to its cap
/// ([`crate::limits`]) before `deadline`.
pub(crate) fn load_files(
    certificate: &Path,
    intermediates: Option<&Path>,
    private_key: Option<&Path>,
    password: Option<&Secret>,
    now: OffsetDateTime,
    deadline: Instant,
) -> Result<Identity, MaterialError> {
    let shown = |p: &Path| crate::keys::redact_reference(&p.display().to_string());
    if let Some(e) = key_store_reference(certificate) {
        return Err(key_error(format!("certificate {}", shown(certificate)))(e));
    }
    if let Some(e) = private_key.and_then(key_store_reference) {
        let origin = format!("private key {}", shown(private_key.unwrap_or(certificate)));
        return Err(key_error(origin)(e));
    }
    let cert_bytes = read("certificate", certificate, MAX_CERTIFICATE_FILE, deadline)?;
    let extra = match intermediates {
        Some(p) => parse_certificates(
            &read("intermediates", p, MAX_CERTIFICATE_FILE, deadline)?,
            &p.display().to_string(),
        )?,
        None => Vec::new(),
    };
    let Some(private_key) = private_key else {
        if pkcs12::looks_like_pkcs12(&cert_bytes) {
            if intermediates.is_some() {
                return Err(MaterialError::BadCertificate {
                    origin: certificate.display().to_string(),
                    reason: "a PKCS#12 file carries its own chain: drop --intermediates".into(),
                });
            }
            let p12 = pkcs12::load_before(&cert_bytes, password, deadline)
                .map_err(key_error(format!("PKCS#12 file {}", certificate.display())))?;
            let position = p12.leaf_position;
            let chain = issuer_order(&p12.leaf, p12.others);
            return Identity::new(p12.leaf, chain, p12.key, now).map_err(|e| {
                e.at(|| {
                    format!(
                        "the {} certificate in the PKCS#12 file {}",
                        super::ordinal(position + 1),
                        certificate.display()
                    )
                })
            });
        }
        if KEY_LABELS
            .iter()
            .any(|l| cert_bytes.windows(l.len()).any(|w| w == l.as_bytes()))
        {
            let key = keys::load_before(&cert_bytes, password, deadline).map_err(key_error(
                format!("private key in {}", certificate.display()),
            ))?;
            let certs = parse_certificates(&cert_bytes, &certificate.display().to_string())?;
            let (position, leaf, mut others) = split_leaf(certs, &key);
            others.extend(extra);
            let chain = issuer_order(&leaf, others);
            return Identity::new(leaf, chain, key, now).map_err(|e| {
                e.at(|| {
                    format!(
                        "the {} certificate in {}",
                        super::ordinal(position + 1),
                        certificate.display()
                    )
                })
            });
        }
        return Err(MaterialError::BadCertificate {
            origin: certificate.display().to_string(),
            reason: "missing --private-key: this file holds no private key (pass --private-key, a PKCS#12 file, or one PEM file with the key and the certificate)".into(),
        });
    };
    if pkcs12::looks_like_pkcs12(&cert_bytes) {
        return Err(MaterialError::BadCertificate {
            origin: certificate.display().to_string(),
            reason: "it is a PKCS#12 file, which holds the private key and the chain itself: drop --private-key (and pass its password with --pkcs8-password-file if it has one)".into(),
        });
    }
    let origin = certificate.display().to_string();
    let mut certs = parse_certificates(&cert_bytes, &origin)?;
    let leaf = certs.remove(0);
    certs.extend(extra);
    let key_bytes = read("private key", private_key, MAX_PRIVATE_KEY_FILE, deadline)?;
    let key = keys::load_before(&key_bytes, password, deadline)
        .map_err(key_error(format!("private key {}", private_key.display())))?;
    Identity::new(leaf, certs, key, now)
        .map_err(|e| e.at(|| format!("the first certificate in {}", certificate.display())))
}

/// The position and the certificate of `key` (the first when none matches: the key check then
/// names the mismatch), and the others in file order.
fn split_leaf(mut certs: Vec<Vec<u8>>, key: &SigningKey) -> (usize, Vec<u8>, Vec<Vec<u8>>) {
    let index = certs
        .iter()
        .position(|der| key.matches_certificate(der))
        .unwrap_or(0);
    let leaf = certs.remove(index);
    (index, leaf, certs)
}

/// The certificates of a container in chain order: the leaf's issuer first, then its issuer,
/// and so on (matched by name, as PKCS#12 files and combined PEM files keep no order); the
/// ones not on that path follow in file order.
fn issuer_order(leaf: &[u8], mut rest: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    fn names(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let (_, c) = X509Certificate::from_der(der).ok()?;
        Some((c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec()))
    }
    let mut ordered = Vec::with_capacity(rest.len());
    let mut current = leaf.to_vec();
    while let Some((subject, issuer)) = names(&current) {
        if subject == issuer {
            break; // a root: nothing above it
        }
        let Some(i) = rest
            .iter()
            .position(|c| names(c).is_some_and(|(s, _)| s == issuer))
        else {
            break;
        };
        current = rest.remove(i);
        ordered.push(current.clone());
    }
    ordered.extend(rest);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon() -> Instant {
        Instant::now() + std::time::Duration::from_secs(5)
    }

    const CERT: &str = include_str!("../../tests/data/kat/cert.pem");
    const KEY: &str = include_str!("../../tests/data/kat/cert-key.pem");

    fn now() -> OffsetDateTime {
        ::time::macros::datetime!(2024-01-02 03:04:05 UTC)
    }

    #[test]
    fn combined_pem_in_either_order() {
        let dir = std::env::temp_dir().join(format!("iamra-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in [
            ("a.pem", format!("{KEY}{CERT}")),
            ("b.pem", format!("{CERT}{KEY}")),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            let id = load_files(&p, None, None, None, now(), soon()).unwrap();
            assert_eq!(
                id.serial_decimal,
                "337562787801933536189724934726614584366112857655"
            );
        }
        let p = dir.join("cert-only.pem");
        std::fs::write(&p, CERT).unwrap();
        let e = load_files(&p, None, None, None, now(), soon())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing --private-key"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_store_references_are_refused_with_advice() {
        for (cert, key) in [
            ("pkcs11:token=a;object=b", None),
            ("/nonexistent/cert.pem", Some("pkcs11:object=k")),
            ("/nonexistent/cert.pem", Some("handle:0x81000001")),
        ] {
            let e = load_files(
                Path::new(cert),
                None,
                key.map(Path::new),
                None,
                now(),
                soon(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("is not supported here: export the key") && e.contains("Vault"),
                "{e}"
            );
        }
    }
}
