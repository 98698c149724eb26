//! Where the identity comes from: the SPIFFE Workload API when asked for ([`spiffe_source`]),
//! else the certificate files ([`CertificateFileArgs`]) when `--certificate` is given, else
//! Vault ([`super::vault`]); the key's password; and how to reach keys in hardware
//! ([`store_options`]: PKCS#11 module and PIN, TPM and key password).

use std::time::Instant;

use super::{ConfigError, Env, err};
use crate::cli::{
    CertificateFileArgs, FlowArgs, HardwareKeyArgs, PrivateKeyArgs, SpiffeArgs, VaultArgs,
};
use crate::limits;
use crate::secret::Secret;
use crate::source::Source;
use crate::source::files::FileSource;
use crate::source::spiffe::SpiffeSource;
use crate::spiffe::{Endpoint, Selector};

/// The SPIFFE Workload API when asked for ([`spiffe_source`]), else certificate files when
/// `--certificate` is given (with `--private-key`, or a PKCS#12 or key + certificate PEM file
/// alone), else Vault (when its flags say where).
pub(super) fn source(
    a: &CertificateFileArgs,
    spiffe: &SpiffeArgs,
    vault: &VaultArgs,
    env: &dyn Env,
    deadline: Instant,
) -> Result<Source, ConfigError> {
    if let Some(s) = spiffe_source(spiffe, a, vault, env)? {
        return Ok(Source::Spiffe(Box::new(s)));
    }
    let key = &a.key;
    match (&a.cert.certificate, &key.private_key) {
        // Without --private-key the certificate file may be a PKCS#12 file or hold the key.
        (Some(certificate), private_key) => Ok(Source::Files(FileSource {
            certificate: certificate.clone(),
            private_key: private_key.clone(),
            intermediates: a.intermediates.clone(),
            password: key_password(key, deadline)?,
            stores: Box::new(store_options(&a.hardware, env, deadline)?),
            loaded: Default::default(),
        })),
        (None, Some(_)) => err("missing --certificate for --private-key"),
        (None, None) if a.intermediates.is_some() => err("--intermediates needs --certificate"),
        (None, None) => {
            if vault.pki_role.is_none()
                && vault.vault_addr.is_none()
                && env.var("VAULT_ADDR").is_none()
            {
                return err(
                    "missing --certificate and --private-key (or the Vault flags --vault-addr and --pki-role to get a certificate from Vault, or --spiffe-endpoint for the SPIFFE Workload API)",
                );
            }
            Ok(Source::Vault(Box::new(super::vault::source(
                vault, env, deadline,
            )?)))
        }
    }
}

/// `init`'s source: the SPIFFE Workload API when asked for ([`spiffe_source`]), else Vault.
pub(super) fn init_source(
    a: &FlowArgs,
    env: &dyn Env,
    deadline: Instant,
) -> Result<Source, ConfigError> {
    match spiffe_source(&a.spiffe, &CertificateFileArgs::default(), &a.vault, env)? {
        Some(s) => Ok(Source::Spiffe(Box::new(s))),
        None => Ok(Source::Vault(Box::new(super::vault::source(
            &a.vault, env, deadline,
        )?))),
    }
}

/// The SPIFFE source, when asked for: `--spiffe-endpoint` (or `IAMRA_SPIFFE_ENDPOINT`), or
/// `SPIFFE_ENDPOINT_SOCKET` when nothing names another source (no `--certificate`, no
/// `--pki-role`, `--vault-addr` or `VAULT_ADDR`). `--spiffe-id` must be a SPIFFE ID;
/// `--spiffe-id`/`--spiffe-hint` without an endpoint, or an endpoint with `--certificate`,
/// are errors.
pub(super) fn spiffe_source(
    a: &SpiffeArgs,
    files: &CertificateFileArgs,
    vault: &VaultArgs,
    env: &dyn Env,
) -> Result<Option<SpiffeSource>, ConfigError> {
    let certificate = files.cert.certificate.is_some();
    let other_source = certificate
        || vault.pki_role.is_some()
        || vault.vault_addr.is_some()
        || env.var("VAULT_ADDR").is_some();
    let raw = match (&a.spiffe_endpoint, env.var("SPIFFE_ENDPOINT_SOCKET")) {
        (Some(_), _) if certificate => {
            return err(
                "both --spiffe-endpoint and --certificate are given: pick one source of the certificate",
            );
        }
        (Some(flag), _) => flag.clone(),
        (None, Some(socket)) if !other_source => socket,
        (None, _) => {
            if a.spiffe_id.is_some() || a.spiffe_hint.is_some() {
                return err(
                    "--spiffe-id and --spiffe-hint need the Workload API: pass --spiffe-endpoint or set SPIFFE_ENDPOINT_SOCKET",
                );
            }
            return Ok(None);
        }
    };
    let endpoint = Endpoint::parse(raw.trim()).map_err(ConfigError)?;
    if let Some(id) = &a.spiffe_id
        && (!id.starts_with("spiffe://")
            || id.len() > 2048
            || id.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return err(format!(
            "--spiffe-id {} is not a SPIFFE ID: use spiffe://trust-domain/path",
            limits::quote(id)
        ));
    }
    Ok(Some(SpiffeSource::new(
        endpoint,
        Selector {
            id: a.spiffe_id.clone(),
            hint: a.spiffe_hint.clone(),
        },
    )))
}

/// The password of an encrypted PKCS#8 key or a PKCS#12 file: `--pkcs8-password-file` (or
/// `IAMRA_PKCS8_PASSWORD_FILE`), or `--pkcs8-password` (or `IAMRA_PKCS8_PASSWORD`), not both.
/// From a file, one trailing newline (`\n` or `\r\n`) is dropped and nothing else: spaces may
/// be part of a password. Neither the value nor the file's content ever goes in a message.
pub(super) fn key_password(
    a: &PrivateKeyArgs,
    deadline: Instant,
) -> Result<Option<Secret>, ConfigError> {
    match (a.pkcs8_password.as_ref(), a.pkcs8_password_file.as_deref()) {
        (Some(_), Some(_)) => err(
            "both --pkcs8-password (or IAMRA_PKCS8_PASSWORD) and --pkcs8-password-file are set: give the password once",
        ),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(path)) => secret_file(path, "--pkcs8-password-file", deadline).map(Some),
        (None, None) => Ok(None),
    }
}

/// A secret in a file: one trailing newline (`\n` or `\r\n`) is dropped and nothing else.
fn secret_file(
    path: &std::path::Path,
    flag: &str,
    deadline: Instant,
) -> Result<Secret, ConfigError> {
    let raw = zeroize::Zeroizing::new(
        crate::bounded::read_file(path, limits::MAX_PASSWORD_FILE, deadline)
            .map_err(|e| ConfigError(format!("cannot read the {flag} {}: {e}", path.display())))?,
    );
    let mut v: &[u8] = &raw;
    if let Some(rest) = v.strip_suffix(b"\n") {
        v = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    let s = std::str::from_utf8(v)
        .map_err(|_| ConfigError(format!("the {flag} {} is not UTF-8 text", path.display())))?;
    Ok(Secret::new(s))
}

/// How to reach keys in hardware: the PKCS#11 module, the user PIN (`--pkcs11-pin` /
/// `IAMRA_PKCS11_PIN` or `--pkcs11-pin-file`, not both), `--reuse-pin`; the TPM key password
/// (`--tpm-key-password` or `--no-tpm-key-password`, not both) and the TPM (`TPM_DEVICE`, as
/// `aws_signing_helper` reads it).
pub(crate) fn store_options(
    a: &HardwareKeyArgs,
    env: &dyn Env,
    deadline: Instant,
) -> Result<crate::keys::StoreOptions, ConfigError> {
    let pin = match (a.pkcs11_pin.clone(), a.pkcs11_pin_file.as_deref()) {
        (Some(_), Some(_)) => {
            return err(
                "both --pkcs11-pin (or IAMRA_PKCS11_PIN) and --pkcs11-pin-file are set: give the PIN once",
            );
        }
        (Some(p), None) => Some(p),
        (None, Some(path)) => Some(secret_file(path, "--pkcs11-pin-file", deadline)?),
        (None, None) => None,
    };
    if a.tpm_key_password.is_some() && a.no_tpm_key_password {
        return err(
            "both --tpm-key-password and --no-tpm-key-password are set: the TPM key has a password or not",
        );
    }
    Ok(crate::keys::StoreOptions {
        pkcs11: crate::keys::pkcs11::Pkcs11Options {
            module: a.pkcs11_lib.clone(),
            pin,
            reuse_pin: a.reuse_pin,
        },
        tpm: crate::keys::tpm::TpmOptions {
            password: a.tpm_key_password.clone(),
            no_password: a.no_tpm_key_password,
            device: env.var("TPM_DEVICE").map(std::path::PathBuf::from),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::soon;

    fn args(value: Option<&str>, file: Option<&std::path::Path>) -> PrivateKeyArgs {
        PrivateKeyArgs {
            pkcs8_password: value.map(Secret::new),
            pkcs8_password_file: file.map(std::path::Path::to_path_buf),
            ..Default::default()
        }
    }

    #[test]
    fn key_password_from_flag_or_file_never_both() {
        let dir = std::env::temp_dir().join(format!("iamra-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "pass phrase \r\n").unwrap();
        let got = key_password(&args(None, Some(&f)), soon())
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), "pass phrase ");
        assert_eq!(
            key_password(&args(Some("x"), None), soon())
                .unwrap()
                .unwrap()
                .expose(),
            "x"
        );
        let e = key_password(&args(Some("x"), Some(&f)), soon())
            .unwrap_err()
            .0;
        assert!(e.contains("give the password once"), "{e}");
        let e = key_password(&args(None, Some(&dir.join("missing"))), soon())
            .unwrap_err()
            .0;
        assert!(e.contains("cannot read the --pkcs8-password-file"), "{e}");
        assert!(key_password(&args(None, None), soon()).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
