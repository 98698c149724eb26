//! Certificate material: the leaf, its intermediates and the key, read and checked before any
//! network call.
//!
//! Inputs: the leaf in PEM or DER (a PEM bundle's further certificates are intermediates),
//! intermediates from a PEM bundle, a private key (see [`crate::keys`]).
//! Checks (`docs/rolesanywhere-protocol.md` §5), each with its own error: the key matches the
//! certificate; X.509 v3; keyUsage digitalSignature; not a CA; signed with SHA-256 or stronger
//! or ML-DSA (MD2, MD5, SHA-1 and SHA-224 signatures are refused, as Roles Anywhere refuses
//! them); within its validity (dates named); an RSA, EC P-256/P-384 or ML-DSA-44/65/87 key; at
//! most 5 intermediates.

use std::fmt;
use std::path::PathBuf;

use ::time::OffsetDateTime;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::*;

use crate::keys::{KeyError, SigningKey};
use crate::limits::MAX_CHAIN;
use crate::timefmt::{self, Style};

fn human(t: OffsetDateTime) -> String {
    timefmt::format(t, Style::Human)
}

/// What is wrong with the certificate material.
#[derive(Debug)]
pub(crate) enum MaterialError {
    /// A file could not be read.
    Read {
        /// Which input (`certificate`, `private key`, `intermediates`).
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file held no certificate, or a certificate that does not parse.
    BadCertificate { origin: String, reason: String },
    /// The private key could not be used.
    Key { origin: String, source: KeyError },
    /// The leaf fails a Roles Anywhere rule.
    Rejected {
        /// The leaf's subject (may be empty).
        subject: String,
        /// Where the leaf is (`the first certificate in cert.pem`), when known: names it when
        /// its subject is empty.
        at: Option<String>,
        /// The rule and what to do.
        reason: String,
    },
}

impl fmt::Display for MaterialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaterialError::Read { what, path, source } => {
                write!(
                    f,
                    "cannot read the {what} file {}: {source}",
                    path.display()
                )
            }
            MaterialError::BadCertificate { origin, reason } => {
                write!(f, "bad certificate in {origin}: {reason}")
            }
            MaterialError::Key { origin, source } => write!(f, "{origin}: {source}"),
            MaterialError::Rejected {
                subject,
                at,
                reason,
            } => match (subject.is_empty(), at) {
                (false, _) => write!(f, "certificate {subject:?} {reason}"),
                (true, Some(at)) => write!(f, "{at} (its subject is empty) {reason}"),
                (true, None) => write!(f, "the certificate with an empty subject {reason}"),
            },
        }
    }
}

impl std::error::Error for MaterialError {}

impl MaterialError {
    /// Says where the leaf is (`the first certificate in cert.pem`), for a refusal that has
    /// no subject to name it by.
    pub(crate) fn at(self, place: impl FnOnce() -> String) -> MaterialError {
        match self {
            MaterialError::Rejected {
                subject,
                at: None,
                reason,
            } => MaterialError::Rejected {
                subject,
                at: Some(place()),
                reason,
            },
            other => other,
        }
    }
}

/// `first`, `second`, ... for certificate positions in a file (1-based).
pub(crate) fn ordinal(n: usize) -> String {
    match n {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}

/// A parser's error (x509-parser's `nom` errors, `der`'s, a PEM reader's) in words: what is
/// wrong with the file, not the parser's names for it (`NomError(Eof)`, `UnexpectedTag`).
/// An error it does not know passes through.
pub(crate) fn der_words(error: &str) -> String {
    let has = |s: &str| error.contains(s);
    let words = if has("Parsing requires") || has("incomplete") || has("Incomplete") {
        "it ends before its contents do: a truncated or cut file"
    } else if has("section end marker") {
        "a PEM block has no END line: a truncated or cut file"
    } else if has("Eof") {
        "it ends where its contents should go on: a truncated file, or not this kind of file"
    } else if has("UnexpectedTag") || has("unexpected ASN.1 DER tag") || has("InvalidTag") {
        "it holds something else where this kind of data begins: another kind of file, or a damaged one"
    } else if has("TrailingData") || has("trailing data") {
        "it has bytes after its end: a damaged file, or two files joined"
    } else if has("malformed ASN.1 DER value") || has("InvalidLength") || has("length") {
        "a value or length inside it is malformed: a damaged file"
    } else if has("Parsing Error") || has("NomError") || has("Der(") || has("ASN.1") {
        "it is not valid DER: a damaged file, or another kind of file"
    } else {
        return error.to_string();
    };
    words.to_string()
}

#[cfg(test)]
mod words_tests {
    #[test]
    fn parser_jargon_becomes_words() {
        for raw in [
            "Parsing Error: NomError(Eof)",
            "Parsing requires 1 bytes/chars",
            "Parsing Error: Der(UnexpectedTag { expected: Some(Tag(16)), actual: Tag(2) })",
            "PKCS#8 ASN.1 error: unexpected ASN.1 DER tag: expected SEQUENCE, got OCTET STRING",
            "ASN.1 DER message is incomplete: expected 4, actual 3 at DER byte 3",
            "missing section end marker: [67, 69]",
            "malformed ASN.1 DER value for INTEGER",
        ] {
            let w = super::der_words(raw);
            for jargon in ["Nom", "Eof", "Tag", "DER byte", "[67", "Parsing"] {
                assert!(!w.contains(jargon), "{raw} -> {w}");
            }
        }
        assert_eq!(super::der_words("no such file"), "no such file");
    }
}

/// A checked leaf, its chain and its key: everything the signer needs.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) leaf_der: Vec<u8>,
    /// Intermediates' DER, nearest issuer first, no self-signed root.
    pub(crate) chain_der: Vec<Vec<u8>>,
    /// The leaf serial as a decimal integer (the `Credential=` value).
    pub(crate) serial_decimal: String,
    /// The leaf's notAfter.
    pub(crate) not_after: OffsetDateTime,
    pub(crate) key: SigningKey,
}

impl Identity {
    /// `X-Amz-X509`.
    pub(crate) fn x509_header(&self) -> String {
        B64.encode(&self.leaf_der)
    }

    /// `X-Amz-X509-Chain`, or `None` without intermediates.
    pub(crate) fn chain_header(&self) -> Option<String> {
        if self.chain_der.is_empty() {
            None
        } else {
            Some(
                self.chain_der
                    .iter()
                    .map(|c| B64.encode(c))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
    }

    /// Checks the leaf against the key and the Roles Anywhere rules at `now`, and keeps the
    /// chain minus any self-signed root.
    pub(crate) fn new(
        leaf_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
        key: SigningKey,
        now: OffsetDateTime,
    ) -> Result<Identity, MaterialError> {
        let (_, cert) =
            X509Certificate::from_der(&leaf_der).map_err(|e| MaterialError::BadCertificate {
                origin: "the leaf".into(),
                reason: der_words(&e.to_string()),
            })?;
        let subject = cert.subject().to_string();
        let reject = |reason: String| MaterialError::Rejected {
            subject: subject.clone(),
            at: None,
            reason,
        };
        check_public_key(&cert).map_err(&reject)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_bits().as_slice() {
            return Err(reject(format!(
                "does not match the private key ({}): pass the key the certificate was issued for",
                key.describe()
            )));
        }
        if cert.version() != X509Version::V3 {
            return Err(reject(format!(
                "is an X.509 v{} certificate; Roles Anywhere requires v3: reissue it with extensions",
                cert.version().0 + 1
            )));
        }
        match cert.key_usage() {
            Ok(Some(ku)) if ku.value.digital_signature() => {}
            Ok(_) => {
                return Err(reject(
                    "lacks the digitalSignature key usage that Roles Anywhere requires: reissue it with keyUsage=digitalSignature".into(),
                ));
            }
            Err(e) => return Err(reject(format!("has an unreadable keyUsage: {e}"))),
        }
        if let Ok(Some(bc)) = cert.basic_constraints()
            && bc.value.ca
        {
            return Err(reject(
                "is a CA certificate (basicConstraints CA:TRUE); use an end-entity certificate"
                    .into(),
            ));
        }
        let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
        if let Some(weak) = weak_signature(&sig_oid) {
            return Err(reject(format!(
                "is signed with {weak}, which Roles Anywhere rejects (it accepts SHA-256 or stronger, or ML-DSA): reissue it with SHA-256 or stronger"
            )));
        }
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        if now < not_before {
            return Err(reject(format!(
                "is not valid before {} (it is now {}): check the clock or wait",
                human(not_before),
                human(now)
            )));
        }
        if now > not_after {
            return Err(reject(format!(
                "expired on {} (it is now {}): renew it",
                human(not_after),
                human(now)
            )));
        }
        let serial_decimal = cert.tbs_certificate.serial.to_string();
        let chain_der: Vec<Vec<u8>> = chain_der
            .into_iter()
            .filter(|der| !is_self_signed(der))
            .collect();
        if chain_der.len() > MAX_CHAIN {
            return Err(reject(format!(
                "comes with {} intermediates; Roles Anywhere accepts at most {MAX_CHAIN}",
                chain_der.len()
            )));
        }
        Ok(Identity {
            leaf_der,
            chain_der,
            serial_decimal,
            not_after,
            key,
        })
    }
}

/// The weak hash of a certificate signature algorithm Roles Anywhere refuses, if it is one.
fn weak_signature(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.1.2" => "MD2 (md2WithRSAEncryption)",
        "1.2.840.113549.1.1.4" => "MD5 (md5WithRSAEncryption)",
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => "SHA-1 (sha1WithRSAEncryption)",
        "1.2.840.10045.4.1" => "SHA-1 (ecdsa-with-SHA1)",
        "1.2.840.10040.4.3" => "SHA-1 (dsa-with-sha1)",
        "1.2.840.113549.1.1.14" => "SHA-224 (sha224WithRSAEncryption)",
        "1.2.840.10045.4.3.1" => "SHA-224 (ecdsa-with-SHA224)",
        "2.16.840.1.101.3.4.3.1" => "SHA-224 (dsa-with-sha224)",
        "2.16.840.1.101.3.4.3.5" => "SHA3-224 (ecdsa-with-SHA3-224)",
        "2.16.840.1.101.3.4.3.13" => "SHA3-224 (RSASSA-PKCS1-v1_5 with SHA3-224)",
        _ => return None,
    })
}

/// RSA, EC on P-256/P-384, or ML-DSA-44/65/87 (see [`crate::keys::oids::check_supported`]).
fn check_public_key(cert: &X509Certificate<'_>) -> Result<(), String> {
    let alg = &cert.public_key().algorithm;
    let curve = alg
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    crate::keys::oids::check_supported(&alg.algorithm.to_id_string(), curve.as_deref())
        .map_err(|e| format!("has an unsupported key type: {e}"))
}

/// A root: self-issued (subject = issuer) and, when it names keys, signed by its own key
/// (authorityKeyIdentifier = subjectKeyIdentifier), which tells a root from a key-rollover
/// certificate without a signature check (a P-384 verify would be most of `init`'s CPU time).
fn is_self_signed(der: &[u8]) -> bool {
    let Ok((_, c)) = X509Certificate::from_der(der) else {
        return false;
    };
    if c.subject() != c.issuer() {
        return false;
    }
    let ski = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        });
    let aki = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        });
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}

/// Reads certificates from PEM (any number) or DER (one).
pub(crate) fn parse_certificates(
    bytes: &[u8],
    origin: &str,
) -> Result<Vec<Vec<u8>>, MaterialError> {
    let bad = |reason: String| MaterialError::BadCertificate {
        origin: origin.to_string(),
        reason,
    };
    let looks_pem = bytes.windows(10).any(|w| w == b"-----BEGIN");
    let certs: Vec<Vec<u8>> = if looks_pem {
        CertificateDer::pem_slice_iter(bytes)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("unreadable PEM ({})", der_words(&e.to_string()))))?
    } else {
        vec![bytes.to_vec()]
    };
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    for (i, der) in certs.iter().enumerate() {
        X509Certificate::from_der(der).map_err(|e| {
            bad(format!(
                "the {} certificate is not a readable X.509 certificate: {}",
                ordinal(i + 1),
                der_words(&e.to_string())
            ))
        })?;
    }
    Ok(certs)
}

/// Reads one input file: capped at `cap` bytes and given up at `deadline` (a FIFO with no
/// writer, `/dev/zero`: see [`crate::bounded`]); `what` names it in the error.
pub(crate) fn read_input(
    what: &'static str,
    path: &std::path::Path,
    cap: u64,
    deadline: std::time::Instant,
) -> Result<Vec<u8>, MaterialError> {
    crate::bounded::read_file(path, cap, deadline).map_err(|e| MaterialError::Read {
        what,
        path: path.to_path_buf(),
        source: e.into_io(),
    })
}

mod files;
pub(crate) use files::load_files;

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &[u8] = include_bytes!("../tests/data/kat/cert.pem");
    const KEY: &[u8] = include_bytes!("../tests/data/kat/cert-key.pem");

    fn now() -> OffsetDateTime {
        ::time::macros::datetime!(2024-01-02 03:04:05 UTC)
    }

    #[test]
    fn kat_leaf_loads_with_decimal_serial() {
        let leaf = parse_certificates(CERT, "cert.pem").unwrap().remove(0);
        let id = Identity::new(
            leaf,
            vec![],
            SigningKey::from_pem_or_der(KEY).unwrap(),
            now(),
        )
        .unwrap();
        assert_eq!(
            id.serial_decimal,
            "337562787801933536189724934726614584366112857655"
        );
        assert_eq!(
            id.x509_header(),
            include_str!("../tests/data/kat/cert.der.b64").trim()
        );
        assert!(id.chain_header().is_none());
    }

    #[test]
    fn dates_are_checked_and_named() {
        let leaf = parse_certificates(CERT, "cert.pem").unwrap().remove(0);
        let early = ::time::macros::datetime!(2020-01-01 00:00:00 UTC);
        let e = Identity::new(
            leaf.clone(),
            vec![],
            SigningKey::from_pem_or_der(KEY).unwrap(),
            early,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("is not valid before 2022-09-25 11:26:00 UTC"),
            "{e}"
        );
        let late = ::time::macros::datetime!(2070-01-01 00:00:00 UTC);
        let e = Identity::new(
            leaf,
            vec![],
            SigningKey::from_pem_or_der(KEY).unwrap(),
            late,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("expired on 2067-09-14 11:26:00 UTC"), "{e}");
    }

    #[test]
    fn mismatched_key_is_refused() {
        let leaf = parse_certificates(CERT, "cert.pem").unwrap().remove(0);
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let key = SigningKey::from_pkcs8(pkcs8.as_ref()).unwrap();
        let e = Identity::new(leaf, vec![], key, now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match the private key"), "{e}");
    }

    #[test]
    fn roots_are_told_from_intermediates_and_rollover_certificates() {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_params = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.use_authority_key_identifier_extension = true;
            p
        };
        let (root_key, new_key) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let root = ca_params("Root").self_signed(&root_key).unwrap();
        assert!(is_self_signed(root.der()));
        let issuer = Issuer::new(ca_params("Root"), &root_key);
        let int = ca_params("Int").signed_by(&new_key, &issuer).unwrap();
        assert!(!is_self_signed(int.der()), "subject differs from issuer");
        // Old key signs the new key under the same name: self-issued, not self-signed.
        let rollover = ca_params("Root").signed_by(&new_key, &issuer).unwrap();
        assert!(
            !is_self_signed(rollover.der()),
            "authority key differs from subject key"
        );
        assert!(!is_self_signed(b"garbage"));
    }

    #[test]
    fn weak_signature_algorithms_are_named() {
        for (oid, name) in [
            ("1.2.840.113549.1.1.4", "MD5"),
            ("1.2.840.113549.1.1.5", "SHA-1"),
            ("1.2.840.10045.4.1", "SHA-1"),
            ("1.2.840.113549.1.1.14", "SHA-224"),
            ("1.2.840.10045.4.3.1", "SHA-224"),
        ] {
            assert!(weak_signature(oid).unwrap().starts_with(name), "{oid}");
        }
        for strong in [
            "1.2.840.113549.1.1.11",   // sha256WithRSAEncryption
            "1.2.840.10045.4.3.2",     // ecdsa-with-SHA256
            "1.2.840.10045.4.3.3",     // ecdsa-with-SHA384
            "2.16.840.1.101.3.4.3.18", // ML-DSA-65
        ] {
            assert_eq!(weak_signature(strong), None, "{strong}");
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(parse_certificates(b"not a cert", "x").is_err());
        assert!(
            parse_certificates(
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "x"
            )
            .is_err()
        );
    }
}
