//! The top-level error: every module's error, sorted into kinds that map to exit codes.
//!
//! | exit | kind |
//! |---|---|
//! | 2 | usage or configuration: flags, ARNs, certificate and key files, a busy listen address, no SVID matching `--spiffe-id`/`--spiffe-hint` |
//! | 3 | the certificate authority: Vault, or the SPIFFE Workload API (agent absent, socket refused, workload still not attested, an unusable SVID) |
//! | 4 | Roles Anywhere (and `--verify`'s STS call) |
//! | 5 | output: the credentials, config or token file could not be written |
//! | 1 | anything else |

use std::fmt;

use crate::aws::credentials_file::WriteError;
use crate::config::ConfigError;
use crate::serve::ServeError;
use crate::server::ServerError;
use crate::source::SourceError;
use crate::webhook::WebhookError;

/// Any failure of a command.
#[derive(Debug)]
pub(crate) enum Error {
    /// Bad flags or environment.
    Config(ConfigError),
    /// No credentials from the source (certificate, Vault or Roles Anywhere).
    Source(SourceError),
    /// A credentials or config file could not be written.
    Output(WriteError),
    /// `serve` could not start.
    Serve(ServeError),
    /// `webhook` could not start.
    Webhook(WebhookError),
    /// STS GetCallerIdentity failed (`--verify`).
    Verify(String),
    Other(String),
}

impl Error {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            Error::Source(SourceError::Material(_) | SourceError::NoCommonName) => 2,
            // A token or TPM that cannot sign is the key's fault, as at load.
            Error::Source(SourceError::Session(
                crate::rolesanywhere::session::SessionError::Signing(_),
            )) => 2,
            Error::Source(SourceError::Vault(_)) => 3,
            Error::Source(SourceError::Spiffe(e)) => e.exit_code(),
            Error::Source(SourceError::Session(_)) | Error::Verify(_) => 4,
            Error::Source(SourceError::Keygen(_)) => 1,
            Error::Output(_) => 5,
            Error::Serve(ServeError::Server(ServerError::Bind { .. })) => 2,
            Error::Serve(ServeError::TokenFile { .. }) => 5,
            Error::Webhook(
                WebhookError::Tls(_) | WebhookError::Server(ServerError::Bind { .. }),
            ) => 2,
            Error::Serve(ServeError::Server(ServerError::Signal(_)))
            | Error::Webhook(WebhookError::Server(ServerError::Signal(_)))
            | Error::Other(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Source(e) => e.fmt(f),
            Error::Output(e) => e.fmt(f),
            Error::Serve(e) => e.fmt(f),
            Error::Webhook(e) => e.fmt(f),
            Error::Verify(e) => write!(f, "--verify: {e}"),
            Error::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Source(e) => Some(e),
            Error::Output(e) => Some(e),
            Error::Serve(e) => Some(e),
            Error::Webhook(e) => Some(e),
            Error::Verify(_) | Error::Other(_) => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
impl From<SourceError> for Error {
    fn from(e: SourceError) -> Self {
        Error::Source(e)
    }
}
/// A certificate or key read outside a source (the offline commands).
impl From<crate::material::MaterialError> for Error {
    fn from(e: crate::material::MaterialError) -> Self {
        Error::Source(SourceError::Material(e))
    }
}
impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        Error::Output(e)
    }
}
impl From<ServeError> for Error {
    fn from(e: ServeError) -> Self {
        Error::Serve(e)
    }
}

impl From<WebhookError> for Error {
    fn from(e: WebhookError) -> Self {
        Error::Webhook(e)
    }
}

/// The one line printed for a failure: no newlines, whatever the inner errors said.
pub(crate) fn one_line(e: &impl fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A failed run as `main` reports it: the exit code and the one line.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code (see the table above).
    pub exit_code: u8,
    /// The error, as one line.
    pub line: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            exit_code: e.exit_code(),
            line: one_line(&e),
        }
    }
}
