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
//! - Keys that never leave hardware: `--certificate pkcs11:URI` (certificate and key in a
//!   token), a certificate file with `--private-key pkcs11:URI`, or a `TSS2 PRIVATE KEY` file
//!   (a TPM key) as `--private-key` ([`crate::keys::pkcs11`], [`crate::keys::tpm`]); a URI is
//!   named with its `pin-value` redacted. TPM key handles (`handle:`) are refused with advice.
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
use crate::keys::pkcs11_uri::{Pkcs11Uri, is_pkcs11};
use crate::keys::{self, KeyError, SigningKey, StoreOptions, pkcs11, pkcs12};
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

/// A `handle:` reference instead of a file: refused with advice.
fn key_store_reference(path: &Path) -> Option<KeyError> {
    let s = path.to_str()?;
    if s.starts_with("handle:") {
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
    stores: &StoreOptions,
    now: OffsetDateTime,
    deadline: Instant,
) -> Result<Identity, MaterialError> {
    let uri = |p: &Path| p.to_str().is_some_and(is_pkcs11);
    if uri(certificate) || private_key.is_some_and(uri) {
        return load_pkcs11(
            certificate,
            intermediates,
            private_key,
            stores,
            now,
            deadline,
        );
    }
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
            let key = keys::load_any(&cert_bytes, password, stores, deadline).map_err(
                key_error(format!("private key in {}", certificate.display())),
            )?;
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
    let key = keys::load_any(&key_bytes, password, stores, deadline)
        .map_err(key_error(format!("private key {}", private_key.display())))?;
    Identity::new(leaf, certs, key, now)
        .map_err(|e| e.at(|| format!("the first certificate in {}", certificate.display())))
}

/// A certificate in a token (`--certificate pkcs11:`), or a certificate file with its key in a
/// token (`--private-key pkcs11:`); intermediates from the certificate file's further
/// certificates and `--intermediates`.
fn load_pkcs11(
    certificate: &Path,
    intermediates: Option<&Path>,
    private_key: Option<&Path>,
    stores: &StoreOptions,
    now: OffsetDateTime,
    deadline: Instant,
) -> Result<Identity, MaterialError> {
    let parse = |p: &Path, what: &str| {
        Pkcs11Uri::parse(p.to_str().unwrap_or_default()).map_err(|e| MaterialError::Key {
            origin: what.to_string(),
            source: KeyError::Hardware(e),
        })
    };
    let cert_is_uri = certificate.to_str().is_some_and(is_pkcs11);
    let cert_uri = if cert_is_uri {
        Some(parse(certificate, "--certificate")?)
    } else {
        None
    };
    let key_uri = match private_key {
        Some(p) if p.to_str().is_some_and(is_pkcs11) => Some(parse(p, "--private-key")?),
        Some(p) => {
            return Err(MaterialError::Key {
                origin: format!("private key {}", p.display()),
                source: KeyError::Hardware(
                    "--certificate pkcs11: takes its key from the token: drop --private-key, or pass --private-key pkcs11:… to name the key".into(),
                ),
            });
        }
        None => None,
    };
    let mut chain = Vec::new();
    let cert_der = if cert_is_uri {
        None
    } else {
        let bytes = read("certificate", certificate, MAX_CERTIFICATE_FILE, deadline)?;
        let mut certs = parse_certificates(&bytes, &certificate.display().to_string())?;
        let leaf = certs.remove(0);
        chain = certs;
        Some(leaf)
    };
    if let Some(p) = intermediates {
        chain.extend(parse_certificates(
            &read("intermediates", p, MAX_CERTIFICATE_FILE, deadline)?,
            &p.display().to_string(),
        )?);
    }
    let origin = match (&key_uri, &cert_uri) {
        (Some(u), _) | (None, Some(u)) => format!("PKCS#11 key {}", u.redacted()),
        (None, None) => "PKCS#11 key".into(),
    };
    let (leaf, key) = pkcs11::load(
        cert_uri.as_ref(),
        key_uri.as_ref(),
        cert_der,
        &stores.pkcs11,
        deadline,
    )
    .map_err(key_error(origin))?;
    Identity::new(leaf, chain, key, now)
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
            let id = load_files(&p, None, None, None, &Default::default(), now(), soon()).unwrap();
            assert_eq!(
                id.serial_decimal,
                "337562787801933536189724934726614584366112857655"
            );
        }
        let p = dir.join("cert-only.pem");
        std::fs::write(&p, CERT).unwrap();
        let e = load_files(&p, None, None, None, &Default::default(), now(), soon())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing --private-key"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_store_references_are_refused_with_advice() {
        #[cfg(not(feature = "hardware"))]
        for (cert, key) in [
            ("pkcs11:token=a;object=b", None),
            ("pkcs11:token=a;object=b", Some("pkcs11:object=k")),
        ] {
            let e = load_files(
                Path::new(cert),
                None,
                key.map(Path::new),
                None,
                &Default::default(),
                now(),
                soon(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("need the hardware build"), "{e}");
        }
        let e = load_files(
            Path::new("pkcs11:colour=red"),
            None,
            None,
            None,
            &Default::default(),
            now(),
            soon(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown path attribute"), "{e}");
        let e = load_files(
            Path::new("/nonexistent/cert.pem"),
            None,
            Some(Path::new("handle:0x81000001")),
            None,
            &Default::default(),
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
