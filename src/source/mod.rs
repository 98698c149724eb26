//! Where the identity comes from, and the one step every command runs with it:
//! identity → signed `CreateSession` → credentials.
//!
//! [`Source`] is planned from validated settings (by `config`) and executed by
//! [`Source::obtain`], as often as a command needs (once for `init` and `credential-process`,
//! at every refresh for `serve`). Each variant:
//! - [`files`]: a certificate, key and chain from files, re-read at every `obtain`, so a
//!   long-running command sees a rotated certificate;
//! - [`vault`]: Vault login, a key generated in memory, a certificate from Vault PKI, and the
//!   Vault token revoked when done;
//! - [`spiffe`]: X.509-SVIDs from the SPIFFE Workload API, the stream kept open and its
//!   rotations pushed to the long-running commands.
//!
//! Each variant also names its part of the `credential-process` cache key ([`Source::key_parts`])
//! and says when its inputs change ([`Source::mark`], [`Source::changed`]: files by a digest of
//! what they hold; Vault never, it is asked again at the scheduled time). The long-running
//! commands keep credentials fresh with the one loop beside the sources, [`refresh`].
//! A new source is a new variant and a new file here; a source that is told of new material
//! (a stream of rotations) answers [`Source::changed`] from it, and the loop refreshes at once.

pub(crate) mod files;
pub(crate) mod refresh;
pub(crate) mod spiffe;
pub(crate) mod vault;

use std::fmt;
use std::time::Instant;

use time::OffsetDateTime;

use crate::credentials::Credentials;
use crate::material::MaterialError;
use crate::rolesanywhere::session::{Session, SessionClient, SessionError};
use crate::spiffe::SpiffeError;
use crate::vault::VaultError;

/// Where the identity comes from.
#[derive(Debug)]
pub(crate) enum Source {
    Files(files::FileSource),
    Vault(Box<vault::VaultSource>),
    Spiffe(Box<spiffe::SpiffeSource>),
}

/// What a source's inputs were at one moment, to be told when they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The digest of the certificate files.
    Files(files::Fingerprint),
    /// A source whose inputs are not watched (Vault: a new certificate at every obtain).
    Unwatched,
    /// A source that pushes its changes (SPIFFE): watched always, and compared with what
    /// its last `obtain` used, not with the moment of the mark.
    Pushed,
}

impl Mark {
    /// The source pushes its changes: the loop always waits for them.
    pub(crate) fn pushed(self) -> bool {
        matches!(self, Mark::Pushed)
    }
}

/// One round of the flow.
#[derive(Debug)]
pub(crate) struct Obtained {
    pub(crate) credentials: Credentials,
    /// `assumedRoleUser.arn`.
    pub(crate) assumed_role_arn: Option<String>,
    /// The certificate's notAfter.
    pub(crate) cert_not_after: OffsetDateTime,
}

impl Obtained {
    fn new(session: Session, cert_not_after: OffsetDateTime) -> Obtained {
        Obtained {
            credentials: session.credentials,
            assumed_role_arn: session.assumed_role_arn,
            cert_not_after,
        }
    }
}

/// Why a source could not produce credentials.
#[derive(Debug)]
pub(crate) enum SourceError {
    /// The certificate or key (from files, or as Vault returned them) is unusable.
    Material(MaterialError),
    Vault(VaultError),
    Session(SessionError),
    /// The SPIFFE Workload API gave no usable SVID.
    Spiffe(SpiffeError),
    /// No `--common-name` and a login that named no ServiceAccount to derive one from.
    NoCommonName,
    /// Generating the key or the CSR failed.
    Keygen(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Material(e) => e.fmt(f),
            SourceError::Vault(e) => e.fmt(f),
            SourceError::Session(e) => e.fmt(f),
            SourceError::Spiffe(e) => e.fmt(f),
            SourceError::NoCommonName => f.write_str(
                "cannot derive the common name: the login named no ServiceAccount; pass --common-name (or VAULT_CERT_CN)",
            ),
            SourceError::Keygen(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Material(e) => Some(e),
            SourceError::Vault(e) => Some(e),
            SourceError::Session(e) => Some(e),
            SourceError::Spiffe(e) => Some(e),
            SourceError::NoCommonName | SourceError::Keygen(_) => None,
        }
    }
}

impl From<MaterialError> for SourceError {
    fn from(e: MaterialError) -> Self {
        SourceError::Material(e)
    }
}
impl From<VaultError> for SourceError {
    fn from(e: VaultError) -> Self {
        SourceError::Vault(e)
    }
}
impl From<SpiffeError> for SourceError {
    fn from(e: SpiffeError) -> Self {
        SourceError::Spiffe(e)
    }
}
impl From<SessionError> for SourceError {
    fn from(e: SessionError) -> Self {
        SourceError::Session(e)
    }
}

impl Source {
    /// The certificate files, when the identity comes from files.
    pub(crate) fn files(&self) -> Option<&files::FileSource> {
        match self {
            Source::Files(f) => Some(f),
            Source::Vault(_) | Source::Spiffe(_) => None,
        }
    }

    /// Its inputs as they are now; take it before an `obtain`, so that a change during it still
    /// counts.
    pub(crate) fn mark(&self) -> Mark {
        match self {
            Source::Files(f) => Mark::Files(f.fingerprint()),
            Source::Vault(_) => Mark::Unwatched,
            Source::Spiffe(_) => Mark::Pushed,
        }
    }

    /// Resolves once the inputs no longer match `since` (never for an unwatched source).
    pub(crate) async fn changed(&self, since: Mark) {
        match (self, since) {
            (Source::Files(f), Mark::Files(before)) => f.changed(before).await,
            // A rotated, withdrawn or returning SVID, pushed by the agent.
            (Source::Spiffe(s), Mark::Pushed) => s.changed().await,
            _ => std::future::pending().await,
        }
    }

    /// This source's part of the cache key: every input that changes the credentials it
    /// obtains, including who obtains them (for files: the certificate, chain and public key
    /// as they are now; for Vault: the settings and a digest of the token the login presents).
    pub(crate) fn key_parts(
        &self,
        deadline: Instant,
    ) -> Result<Vec<(&'static str, Vec<u8>)>, SourceError> {
        match self {
            Source::Files(f) => f.key_parts(deadline),
            Source::Vault(v) => v.key_parts(deadline),
            Source::Spiffe(s) => Ok(vec![("spiffe", s.describe().into_bytes())]),
        }
    }

    /// Identity, then the Roles Anywhere session through `client`, all before `deadline`.
    pub(crate) async fn obtain(
        &self,
        client: &SessionClient,
        deadline: Instant,
    ) -> Result<Obtained, SourceError> {
        match self {
            Source::Files(f) => f.obtain(client, deadline).await,
            Source::Vault(v) => v.obtain(client, deadline).await,
            Source::Spiffe(s) => s.obtain(client, deadline).await,
        }
    }
}

impl SourceError {
    /// The identity was taken away (a SPIFFE SVID withdrawn by the agent): credentials made
    /// from it must no longer be handed out.
    pub(crate) fn withdrawn(&self) -> bool {
        match self {
            SourceError::Spiffe(e) => e.withdrawn(),
            _ => false,
        }
    }
}

/// Logs the created session (one step line, as every source does).
fn log_session(session: &Session, started: Instant) {
    tracing::info!(
        step = "create_session",
        duration_ms = crate::logging::ms_since(started),
        expiration = %session.credentials.expiration_rfc3339(),
        access_key_id = %session.credentials.access_key_id,
        "created the Roles Anywhere session"
    );
}
