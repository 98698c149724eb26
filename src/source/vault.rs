//! The Vault source: log in (re-reading the ServiceAccount token), generate a key in memory,
//! have Vault PKI sign a CSR for it (or issue key and certificate), check the result, create
//! the Roles Anywhere session, and revoke the Vault token whatever the outcome (unless it was
//! given, is a batch token, or `--keep-vault-token`). Each step is timed in the logs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{Obtained, SourceError, log_session};
use crate::keygen::{self, KeyType};
use crate::logging::ms_since;
use crate::material::Identity;
use crate::rolesanywhere::session::SessionClient;
use crate::secret::Secret;
use crate::timefmt::{self, Style};
use crate::vault::login::{self, Login, Revoked, default_common_name};
use crate::vault::pki::{self, Request};
use crate::vault::{self, VaultClient, VaultError};

/// How long a revoke may take past the run's deadline.
const REVOKE_GRACE: Duration = Duration::from_secs(1);

/// How Vault PKI produces the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PkiMode {
    /// Our CSR, key generated in memory (the key never leaves the process).
    Sign,
    /// Vault generates key and certificate.
    Issue,
}

/// A Vault, its client (built once: connections are reused across refreshes) and what to ask.
#[derive(Debug)]
pub(crate) struct VaultSource {
    pub(crate) client: VaultClient,
    pub(crate) settings: vault::Settings,
    pub(crate) mode: PkiMode,
    pub(crate) key_type: KeyType,
    /// `None` = derived from the ServiceAccount at login.
    pub(crate) common_name: Option<String>,
    /// `--keep-vault-token`.
    pub(crate) keep_token: bool,
    /// The token file as [`VaultSource::key_parts`] read it, for the login right after it: a
    /// pipe (`--service-account-token-file <(…)`) can be read only once.
    pub(crate) preread: Mutex<Option<Secret>>,
}

impl VaultSource {
    /// Everything that changes the certificate asked for (no secrets), for the cache key.
    pub(super) fn describe(&self) -> String {
        format!(
            "{} mode={:?} cn={} key={:?}",
            self.settings.describe(),
            self.mode,
            self.common_name
                .as_deref()
                .unwrap_or("<from service account>"),
            self.key_type
        )
    }

    /// The credential-process cache key's part: what is asked for, and who asks. The key
    /// must differ between identities, so it covers a SHA-256 of the credential the login
    /// presents (the ServiceAccount token as it is now, or the given Vault token), never just
    /// the file's path: a different token behind the same path is a different entry. An AppRole
    /// login is named by its role id (in [`VaultSource::describe`]).
    pub(super) fn key_parts(
        &self,
        deadline: Instant,
    ) -> Result<Vec<(&'static str, Vec<u8>)>, SourceError> {
        let mut parts = vec![("vault", self.describe().into_bytes())];
        let credential = match &self.settings.auth {
            vault::Auth::Token { token } => Some(token.clone()),
            auth => {
                let jwt = login::read_jwt_now(auth, deadline)?;
                *self.preread.lock().unwrap_or_else(|p| p.into_inner()) = jwt.clone();
                jwt
            }
        };
        if let Some(c) = credential {
            let digest = ring::digest::digest(&ring::digest::SHA256, c.expose().as_bytes());
            parts.push(("vault_credential_sha256", digest.as_ref().to_vec()));
        }
        Ok(parts)
    }

    pub(super) async fn obtain(
        &self,
        client: &SessionClient,
        deadline: Instant,
    ) -> Result<Obtained, SourceError> {
        let t = Instant::now();
        let preread = self
            .preread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let login = login::login(&self.client, &self.settings.auth, preread, deadline).await?;
        tracing::info!(
            step = "login",
            duration_ms = ms_since(t),
            token_type = %crate::limits::field(&login.token_type),
            "logged in to Vault"
        );
        let to_revoke = (login.revocable && !self.keep_token).then_some(&login.token);
        // Do not leave a token behind, whatever happens. The token is not needed past the
        // certificate, so it is revoked while Roles Anywhere answers: a pod start does not
        // wait for the revoke (the slowest Vault call when many pods start at once, see
        // vault/README.md, "Cost per pod start") after CreateSession.
        match self.certificate(&login, deadline).await {
            Ok(identity) => {
                let session = async {
                    let t = Instant::now();
                    let session = client.create_session(&identity, deadline).await;
                    if let Ok(s) = &session {
                        log_session(s, t);
                    }
                    session
                };
                let (session, ()) = tokio::join!(session, self.revoke(to_revoke, deadline));
                session
                    .map(|s| Obtained::new(s, identity.not_after))
                    .map_err(SourceError::from)
            }
            Err(e) => {
                self.revoke(to_revoke, deadline).await;
                Err(e)
            }
        }
    }

    async fn certificate(&self, login: &Login, deadline: Instant) -> Result<Identity, SourceError> {
        let cn = match (&self.common_name, &login.service_account) {
            (Some(cn), _) => cn.clone(),
            (None, Some(sa)) => default_common_name(sa),
            (None, None) => return Err(SourceError::NoCommonName),
        };
        let generated = match self.mode {
            PkiMode::Sign => {
                let t = Instant::now();
                let g = keygen::generate(self.key_type, &cn).map_err(SourceError::Keygen)?;
                tracing::info!(step = "keygen", duration_ms = ms_since(t), key = %g.key.describe(), "generated key in memory");
                Some(g)
            }
            PkiMode::Issue => None,
        };
        let request = match &generated {
            Some(g) => Request::Sign {
                csr_pem: &g.csr_pem,
            },
            None => {
                let (key_type, key_bits) = vault_key_params(self.key_type);
                Request::Issue { key_type, key_bits }
            }
        };
        let t = Instant::now();
        let issued = pki::sign_or_issue(
            &self.client,
            &login.token,
            &self.settings.pki,
            &cn,
            request,
            deadline,
        )
        .await?;
        let key = match (generated, issued.key) {
            (Some(g), _) => g.key,
            (None, Some(k)) => k,
            (None, None) => {
                return Err(SourceError::Vault(VaultError::BadResponse {
                    op: "PKI issue".into(),
                    why: "no private_key in the answer".into(),
                }));
            }
        };
        let identity = Identity::new(
            issued.leaf_der,
            issued.chain_der,
            key,
            OffsetDateTime::now_utc(),
        )?;
        tracing::info!(
            step = "sign",
            duration_ms = ms_since(t),
            mode = ?self.mode,
            common_name = %crate::limits::field(&cn),
            serial = %identity.serial_decimal,
            not_after = %timefmt::format(identity.not_after, Style::Human),
            chain = identity.chain_der.len(),
            "certificate from Vault PKI"
        );
        Ok(identity)
    }

    /// Revokes `token` (if any), logging (not failing) on error. It gets [`REVOKE_GRACE`] even
    /// when the run's deadline has passed, so a timed-out run still cleans up after itself.
    async fn revoke(&self, token: Option<&Secret>, deadline: Instant) {
        let Some(token) = token else { return };
        let t = Instant::now();
        let deadline = deadline.max(t + REVOKE_GRACE);
        match login::revoke_self(&self.client, token, deadline).await {
            Ok(Revoked::Now) => tracing::info!(
                step = "revoke",
                duration_ms = ms_since(t),
                "revoked the Vault token"
            ),
            Ok(Revoked::Earlier) => tracing::info!(
                step = "revoke",
                duration_ms = ms_since(t),
                "revoked the Vault token (an earlier attempt did it; its answer was lost and Vault now refuses the token)"
            ),
            Err(e) => tracing::warn!(error = %e, "could not revoke the Vault token"),
        }
    }
}

/// The generated key's type as Vault PKI's `issue` names it: `key_type` and `key_bits`.
fn vault_key_params(kt: KeyType) -> (&'static str, u32) {
    match kt {
        KeyType::EcP256 => ("ec", 256),
        KeyType::EcP384 => ("ec", 384),
        KeyType::Rsa2048 => ("rsa", 2048),
        KeyType::Rsa3072 => ("rsa", 3072),
        KeyType::Rsa4096 => ("rsa", 4096),
    }
}
