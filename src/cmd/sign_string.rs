//! `sign-string`: `aws_signing_helper sign-string`, for checking a key and digest offline.
//!
//! Contract (the helper's `cmd/sign_string.go` and README, read not copied): it signs its own
//! fixed test message, never stdin ([`SigningKey::helper_test_message`]), hashed with
//! `--digest` (`SHA256` default, `SHA384`, `SHA512`; see [`crate::keys::Digest`]; ML-DSA signs
//! the message itself). `--format json` (default) prints the lower-case hex signature as a
//! JSON string, `text` the bare hex, `bin` the raw bytes; no trailing newline. `--certificate`,
//! when given, must hold the key's public key. Every file is read through
//! [`crate::bounded`] and the key is loaded within `--timeout` ([`crate::keys::load_before`]).

use std::io::Write;

use crate::cli::{SignFormat, SignStringArgs};
use crate::config::{self, ConfigError};
use crate::error::Error;
use crate::keys;
use crate::limits::{MAX_CERTIFICATE_FILE, MAX_PRIVATE_KEY_FILE};
use crate::material::{self, MaterialError};

/// Runs the command.
pub(crate) fn run(args: SignStringArgs) -> Result<(), Error> {
    let plan = config::plan_sign_string(&args)?;
    let (path, password, deadline) = (&plan.private_key, plan.password, plan.deadline);
    let bytes = material::read_input("private key", path, MAX_PRIVATE_KEY_FILE, deadline)?;
    let origin = format!("private key {}", path.display());
    let key = keys::load_before(&bytes, password.as_ref(), deadline).map_err(|source| {
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
