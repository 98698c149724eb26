//! `sign-string`: `aws_signing_helper sign-string`, for checking a key and digest offline.
//!
//! Contract (the helper's `cmd/sign_string.go` and README, read not copied): it signs its own
//! fixed test message, never stdin ([`SigningKey::helper_test_message`]), hashed with
//! `--digest` (`SHA256` default, `SHA384`, `SHA512`; see [`crate::keys::Digest`]; ML-DSA signs
//! the message itself). `--format json` (default) prints the lower-case hex signature as a
//! JSON string, `text` the bare hex, `bin` the raw bytes; no trailing newline. `--certificate`,
//! when given, must hold the key's public key. Every file is read through
//! [`crate::bounded`] and the key is loaded within `--timeout` ([`crate::keys::load_before`]).
//! Hardware keys as for `credential-process`: `--private-key pkcs11:…`, or `--certificate
//! pkcs11:…` alone (the key beside the certificate in the token), or a TSS2 key file.

use std::io::Write;

use crate::cli::{SignFormat, SignStringArgs};
use crate::config::SignStringPlan;
use crate::config::{self, ConfigError};
use crate::error::Error;
use crate::keys::pkcs11_uri::{Pkcs11Uri, is_pkcs11};
use crate::keys::{self, SigningKey};
use crate::limits::{MAX_CERTIFICATE_FILE, MAX_PRIVATE_KEY_FILE};
use crate::material::{self, MaterialError};

/// Runs the command.
pub(crate) fn run(args: SignStringArgs) -> Result<(), Error> {
    let plan = config::plan_sign_string(&args)?;
    let uri = |p: Option<&std::path::PathBuf>| {
        p.and_then(|p| p.to_str())
            .filter(|s| is_pkcs11(s))
            .map(str::to_string)
    };
    let (cert_uri, key_uri) = (
        uri(plan.certificate.as_ref()),
        uri(plan.private_key.as_ref()),
    );
    let Some(path) = plan.private_key.as_ref().filter(|_| key_uri.is_none()) else {
        let (key, origin) = token_key(&plan, cert_uri, key_uri)?;
        return sign_and_print(&plan, &key, origin);
    };
    let (password, deadline) = (plan.password.as_ref(), plan.deadline);
    let bytes = material::read_input("private key", path, MAX_PRIVATE_KEY_FILE, deadline)?;
    let origin = format!("private key {}", path.display());
    let key = keys::load_any(&bytes, password, &plan.stores, deadline).map_err(|source| {
        MaterialError::Key {
            origin: origin.clone(),
            source,
        }
    })?;
    if let Some(cert) = &plan.certificate {
        let der = material::read_input("certificate", cert, MAX_CERTIFICATE_FILE, deadline)?;
        let leaf = material::parse_certificates(&der, &cert.display().to_string())?.remove(0);
        if !key.matches_certificate(&leaf) {
            return Err(ConfigError(format!(
                "the private key {} does not belong to the certificate {}; pass the matching pair",
                path.display(),
                cert.display()
            ))
            .into());
        }
    }
    sign_and_print(&plan, &key, origin)
}

/// A key in a token (as for `credential-process`): the certificate's, or the one
/// `--private-key` names (checked against `--certificate` when that is a file).
fn token_key(
    plan: &SignStringPlan,
    cert_uri: Option<String>,
    key_uri: Option<String>,
) -> Result<(SigningKey, String), Error> {
    let parse = |s: Option<String>, what: &str| {
        s.as_deref()
            .map(Pkcs11Uri::parse)
            .transpose()
            .map_err(|e| MaterialError::Key {
                origin: what.into(),
                source: keys::KeyError::Hardware(e),
            })
    };
    let (cu, ku) = (
        parse(cert_uri, "--certificate")?,
        parse(key_uri, "--private-key")?,
    );
    let cert_der = match (&plan.certificate, &cu) {
        (Some(path), None) => {
            let der =
                material::read_input("certificate", path, MAX_CERTIFICATE_FILE, plan.deadline)?;
            Some(material::parse_certificates(&der, &path.display().to_string())?.remove(0))
        }
        _ => None,
    };
    let origin = ku
        .as_ref()
        .or(cu.as_ref())
        .map(|u| format!("PKCS#11 key {}", u.redacted()))
        .unwrap_or_default();
    let (_, key) = keys::pkcs11::load(
        cu.as_ref(),
        ku.as_ref(),
        cert_der,
        &plan.stores.pkcs11,
        plan.deadline,
    )
    .map_err(|source| MaterialError::Key {
        origin: origin.clone(),
        source,
    })?;
    Ok((key, origin))
}

/// Signs the helper's test message with `key` and prints the signature.
fn sign_and_print(plan: &SignStringPlan, key: &SigningKey, origin: String) -> Result<(), Error> {
    let message = key.helper_test_message();
    if plan.debug {
        eprintln!(
            "signing the fixed string \"AWS Roles Anywhere Credential Helper Signing Test\" || SIGN_STRING_TEST_VERSION || SHA256(\"IAM RA\" || PUBLIC_KEY_BYTE_ARRAY) with {} and {:?}",
            key.describe(),
            plan.digest
        );
    }
    let sig = key
        .sign_with(plan.digest, &message)
        .map_err(|source| MaterialError::Key { origin, source })?;
    let out = match plan.format {
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
