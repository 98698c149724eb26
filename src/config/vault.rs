//! The Vault flags ([`VaultArgs`]) and Vault's own environment variables (`VAULT_ADDR`,
//! `VAULT_CACERT`, `VAULT_CAPATH`, `VAULT_SKIP_VERIFY`, `VAULT_NAMESPACE`, `VAULT_TOKEN`,
//! `VAULT_CLIENT_TIMEOUT`, as its Go client reads them: `docs/ecosystem-contracts.md` §5) as a
//! ready [`VaultSource`], its client built once.

use std::path::Path;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{ConfigError, Env, err, parse_duration, parse_go_bool};
use crate::cli::{self, AuthMethod, VaultArgs};
use crate::http::Roots;
use crate::keygen::KeyType;
use crate::limits::{self, MAX_CA_FILE};
use crate::secret::Secret;
use crate::source::vault::{PkiMode, VaultSource};
use crate::vault::{self, Auth, JwtMethod, VaultClient};

/// The Vault flags and Vault's own environment variables, validated, as a ready source (its
/// client built once).
pub(super) fn source(
    a: &VaultArgs,
    env: &dyn Env,
    deadline: Instant,
) -> Result<VaultSource, ConfigError> {
    let addr = a
        .vault_addr
        .clone()
        .or_else(|| env.var("VAULT_ADDR"))
        .unwrap_or_else(|| "https://127.0.0.1:8200".into());
    let addr = vault::parse_addrs(&addr).map_err(ConfigError)?;
    let insecure = match env.var("VAULT_SKIP_VERIFY") {
        Some(v) => parse_go_bool("VAULT_SKIP_VERIFY", &v)?,
        None => false,
    };
    let roots = if let Some(f) = env.var("VAULT_CACERT") {
        Roots::Custom(read_pem_certs(Path::new(&f), "VAULT_CACERT", deadline)?)
    } else if let Some(d) = env.var("VAULT_CAPATH") {
        let mut certs = Vec::new();
        let entries = std::fs::read_dir(&d)
            .map_err(|e| ConfigError(format!("cannot read VAULT_CAPATH folder {d}: {e}")))?;
        for entry in entries.flatten() {
            if entry.path().is_file() {
                certs.extend(
                    read_pem_certs(&entry.path(), "VAULT_CAPATH", deadline).unwrap_or_default(),
                );
            }
        }
        if certs.is_empty() {
            return err(format!("VAULT_CAPATH folder {d} holds no PEM certificates"));
        }
        Roots::Custom(certs)
    } else {
        Roots::Public
    };
    let client_timeout = match env.var("VAULT_CLIENT_TIMEOUT") {
        Some(v) => {
            parse_duration(&v).map_err(|e| ConfigError(format!("VAULT_CLIENT_TIMEOUT: {e}")))?
        }
        None => Duration::from_secs(60),
    };
    let mount = |default: &str| {
        a.vault_auth_mount
            .clone()
            .unwrap_or_else(|| default.to_string())
            .trim_matches('/')
            .to_string()
    };
    let role = a.vault_role.clone().or_else(|| env.var("VAULT_ROLE"));
    let jwt = |method: JwtMethod| -> Result<Auth, ConfigError> {
        Ok(Auth::Jwt {
            method,
            mount: mount(method.name()),
            role: role.clone().ok_or_else(|| {
                ConfigError(format!("missing --vault-role for {} auth: pass it or set IAMRA_VAULT_ROLE (or VAULT_ROLE)", method.name()))
            })?,
            token_file: a.service_account_token_file.clone(),
        })
    };
    let auth = match a.vault_auth {
        AuthMethod::Kubernetes => jwt(JwtMethod::Kubernetes)?,
        AuthMethod::Jwt => jwt(JwtMethod::Jwt)?,
        AuthMethod::Approle => Auth::AppRole {
            mount: mount("approle"),
            role_id: a.approle_role_id.clone().ok_or_else(|| {
                ConfigError("missing --approle-role-id for approle auth (or IAMRA_APPROLE_ROLE_ID)".into())
            })?,
            secret_id_file: a.approle_secret_id_file.clone().ok_or_else(|| {
                ConfigError("missing --approle-secret-id-file for approle auth (or IAMRA_APPROLE_SECRET_ID_FILE)".into())
            })?,
        },
        AuthMethod::Token => Auth::Token {
            token: Secret::new(env.var("VAULT_TOKEN").ok_or_else(|| {
                ConfigError("--vault-auth token needs VAULT_TOKEN set".into())
            })?),
        },
    };
    let common_name = a.common_name.clone().or_else(|| env.var("VAULT_CERT_CN"));
    if let Some(cn) = &common_name
        && (cn.is_empty()
            || cn.len() > limits::MAX_COMMON_NAME_LEN
            || cn.chars().any(char::is_control))
    {
        return err(format!(
            "--common-name {} is invalid: 1-{} characters, no line breaks",
            limits::quote(cn),
            limits::MAX_COMMON_NAME_LEN
        ));
    }
    if common_name.is_none() && matches!(auth, Auth::AppRole { .. } | Auth::Token { .. }) {
        return err(
            "missing --common-name: with approle or token auth there is no ServiceAccount to derive it from (or set IAMRA_COMMON_NAME / VAULT_CERT_CN)",
        );
    }
    let pki_role = a.pki_role.clone().ok_or_else(|| {
        ConfigError(
            "missing --pki-role: the Vault PKI role that signs the certificate (or IAMRA_PKI_ROLE)"
                .into(),
        )
    })?;
    parse_duration(&a.cert_ttl).map_err(|e| ConfigError(format!("--cert-ttl: {e}")))?;
    let settings = vault::Settings {
        addr: addr.trim_end_matches('/').to_string(),
        namespace: env.var("VAULT_NAMESPACE"),
        roots,
        insecure,
        client_timeout,
        auth,
        pki: vault::Pki {
            mount: a.pki_mount.trim_matches('/').to_string(),
            role: pki_role,
            ttl: a.cert_ttl.clone(),
        },
    };
    let client = VaultClient::new(&settings).map_err(|e| {
        ConfigError(format!(
            "cannot use Vault's TLS settings: {e}; check VAULT_CACERT / VAULT_CAPATH"
        ))
    })?;
    Ok(VaultSource {
        client,
        settings,
        mode: match a.pki_mode {
            cli::PkiMode::Sign => PkiMode::Sign,
            cli::PkiMode::Issue => PkiMode::Issue,
        },
        key_type: match a.key_type {
            cli::KeyType::EcP256 => KeyType::EcP256,
            cli::KeyType::EcP384 => KeyType::EcP384,
            cli::KeyType::Rsa2048 => KeyType::Rsa2048,
            cli::KeyType::Rsa3072 => KeyType::Rsa3072,
            cli::KeyType::Rsa4096 => KeyType::Rsa4096,
        },
        common_name,
        keep_token: a.keep_vault_token,
        preread: Default::default(),
    })
}

/// A CA file: at most [`MAX_CA_FILE`] bytes, read before `deadline`.
fn read_pem_certs(
    path: &Path,
    what: &str,
    deadline: Instant,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = crate::bounded::read_file(path, MAX_CA_FILE, deadline)
        .map_err(|e| ConfigError(format!("cannot read {what} file {}: {e}", path.display())))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError(format!("{what} file {} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return err(format!(
            "{what} file {} holds no CERTIFICATE",
            path.display()
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{env, soon};

    fn vault_source_soon(a: &VaultArgs, env: &dyn Env) -> Result<VaultSource, ConfigError> {
        source(a, env, soon())
    }

    #[test]
    fn vault_env_conventions() {
        let a = VaultArgs {
            vault_role: None,
            pki_role: Some("r".into()),
            pki_mount: "pki_int".into(),
            cert_ttl: "1h".into(),
            ..Default::default()
        };
        let e = vault_source_soon(&a, &env(&[("VAULT_ROLE", "app")])).unwrap();
        assert!(
            matches!(e.settings.auth, Auth::Jwt { method: JwtMethod::Kubernetes, ref role, ref mount, .. } if role == "app" && mount == "kubernetes")
        );
        assert_eq!(e.settings.addr, "https://127.0.0.1:8200");
        let bad = vault_source_soon(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_SKIP_VERIFY", "yes")]),
        )
        .unwrap_err()
        .0;
        assert!(bad.contains("VAULT_SKIP_VERIFY"), "{bad}");
        let ok = vault_source_soon(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_SKIP_VERIFY", "T")]),
        )
        .unwrap();
        assert!(ok.settings.insecure);
        let a2 = VaultArgs {
            vault_auth: AuthMethod::Approle,
            approle_role_id: Some("x".into()),
            approle_secret_id_file: Some("f".into()),
            ..a.clone()
        };
        assert!(
            vault_source_soon(&a2, &env(&[]))
                .unwrap_err()
                .0
                .contains("--common-name")
        );
        let t = vault_source_soon(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_CLIENT_TIMEOUT", "30s")]),
        )
        .unwrap();
        assert_eq!(t.settings.client_timeout, Duration::from_secs(30));
        let bad_ca = vault_source_soon(
            &a,
            &env(&[
                ("VAULT_ROLE", "app"),
                ("VAULT_CACERT", "/nonexistent/ca.pem"),
            ]),
        )
        .unwrap_err()
        .0;
        assert!(bad_ca.contains("VAULT_CACERT"), "{bad_ca}");
    }
}
