//! `read-certificate-data --certificate F`: `aws_signing_helper read-certificate-data` for a
//! certificate file.
//!
//! Contract (the helper's `ReadCertificateData`, read not copied): stdout is compact JSON, no
//! trailing newline, keys in this order: `keyType` (`RSA`, `EC`, or the ML-DSA variant
//! `ML-DSA-44|65|87`; empty for other keys), `certificateData` (the first certificate's DER,
//! standard base64), `serialNumber` (decimal), `supportedAlgorithms` (`<keyType>SHA256`,
//! `<keyType>SHA384`, `<keyType>SHA512`; for ML-DSA just the variant). PEM (first certificate)
//! or DER. The file is read through [`crate::bounded`] (capped, given up at `--timeout`).
//!
//! With `--certificate pkcs11:URI` it prints, as the helper does, `Matching identities` and for
//! each certificate the URI selects: its SHA-1 fingerprint, subject, issuer, serial (upper-case
//! hex) and a `pkcs11:` URI that selects exactly it (token, manufacturer, model, serial, id,
//! object, type=cert); or `No matching identities`.

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use x509_parser::prelude::FromDer;

use crate::cli::ReadCertificateDataArgs;
use crate::error::Error;
use crate::keys::oids;
use crate::limits::MAX_CERTIFICATE_FILE;
use crate::material::{self, MaterialError};

/// The helper's `CertificateData`, field order as it prints them.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct CertificateData {
    /// `RSA`, `EC`, `ML-DSA-*` or empty.
    #[serde(rename = "keyType")]
    pub(crate) key_type: String,
    /// Base64 DER.
    #[serde(rename = "certificateData")]
    pub(crate) certificate_data: String,
    /// Decimal serial.
    #[serde(rename = "serialNumber")]
    pub(crate) serial_number: String,
    /// Algorithms by key type.
    #[serde(rename = "supportedAlgorithms")]
    pub(crate) supported_algorithms: Vec<String>,
}

/// Describes one certificate's DER.
pub(crate) fn describe(der: &[u8], origin: &str) -> Result<CertificateData, MaterialError> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| {
        MaterialError::BadCertificate {
            origin: origin.to_string(),
            reason: material::der_words(&e.to_string()),
        }
    })?;
    let oid = cert.public_key().algorithm.algorithm.to_id_string();
    let (key_type, algorithms) = match oid.as_str() {
        oids::RSA => ("RSA".to_string(), None),
        oids::EC => ("EC".to_string(), None),
        other => match oids::mldsa_name(other) {
            Some(level) => (level.to_string(), Some(vec![level.to_string()])),
            None => (String::new(), None),
        },
    };
    let supported_algorithms = algorithms.unwrap_or_else(|| {
        ["SHA256", "SHA384", "SHA512"]
            .iter()
            .map(|h| format!("{key_type}{h}"))
            .collect()
    });
    Ok(CertificateData {
        key_type,
        certificate_data: B64.encode(der),
        serial_number: cert.tbs_certificate.serial.to_str_radix(10),
        supported_algorithms,
    })
}

/// Runs the command.
pub(crate) fn run(args: ReadCertificateDataArgs) -> Result<(), Error> {
    let plan = crate::config::plan_read_certificate_data(&args)?;
    let path = &plan.certificate;
    if let Some(uri) = path
        .to_str()
        .filter(|s| crate::keys::pkcs11_uri::is_pkcs11(s))
    {
        return list_token_certificates(uri, &plan.stores, plan.deadline);
    }
    let bytes = material::read_input("certificate", path, MAX_CERTIFICATE_FILE, plan.deadline)?;
    let origin = path.display().to_string();
    let leaf = material::parse_certificates(&bytes, &origin)?.remove(0);
    let data = describe(&leaf, &origin)?;
    let json = serde_json::to_string(&data).map_err(|e| Error::Other(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(json.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")))
}

/// Lists the certificates a `pkcs11:` URI selects, in the helper's words.
fn list_token_certificates(
    raw: &str,
    stores: &crate::keys::StoreOptions,
    deadline: std::time::Instant,
) -> Result<(), Error> {
    use crate::keys::KeyError;
    use crate::keys::pkcs11_uri::Pkcs11Uri;
    let uri = Pkcs11Uri::parse(raw).map_err(|e| MaterialError::Key {
        origin: "--certificate".into(),
        source: KeyError::Hardware(e),
    })?;
    let found = crate::keys::pkcs11::list_certificates(&uri, &stores.pkcs11, deadline).map_err(
        |source| MaterialError::Key {
            origin: format!("PKCS#11 {}", uri.redacted()),
            source,
        },
    )?;
    let mut out = String::from(if found.is_empty() {
        "No matching identities\n"
    } else {
        "Matching identities\n"
    });
    for (i, (der, uri)) in found.iter().enumerate() {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| {
            MaterialError::BadCertificate {
                origin: uri.clone(),
                reason: e.to_string(),
            }
        })?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        out.push_str(&format!(
            "{}) Hex Fingerprint: {}\nSubject: {}\nIssuer: {}\nSerial Number: {}\nURI: {uri}\n\n",
            i + 1,
            hex::encode(sha1.as_ref()),
            cert.subject(),
            cert.issuer(),
            cert.tbs_certificate.serial.to_str_radix(16).to_uppercase(),
        ));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kat_certificate() {
        let pem = include_bytes!("../../tests/data/kat/cert.pem");
        let der = material::parse_certificates(pem, "cert.pem")
            .unwrap()
            .remove(0);
        let d = describe(&der, "cert.pem").unwrap();
        assert_eq!(d.key_type, "RSA");
        assert_eq!(
            d.serial_number,
            "337562787801933536189724934726614584366112857655"
        );
        assert_eq!(
            d.supported_algorithms,
            ["RSASHA256", "RSASHA384", "RSASHA512"]
        );
        assert_eq!(
            d.certificate_data,
            include_str!("../../tests/data/kat/cert.der.b64").trim()
        );
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            json.starts_with("{\"keyType\":\"RSA\",\"certificateData\":\""),
            "{json}"
        );
        assert!(
            json.ends_with(",\"supportedAlgorithms\":[\"RSASHA256\",\"RSASHA384\",\"RSASHA512\"]}")
        );
    }
}
