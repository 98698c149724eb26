//! The top-level error: every module's error, sorted into kinds that map to exit codes.
//!
//! | exit | kind |
//! |---|---|
//! | 2 | usage or configuration: flags, ARNs, certificate and key files |
//! | 3 | Vault |
//! | 4 | Roles Anywhere (and `--verify`'s STS call) |
//! | 5 | output: the credentials, config or token file could not be written |
//! | 1 | anything else |

use std::fmt;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::material::MaterialError;
use crate::rolesanywhere::session::SessionError;
use crate::vault::VaultError;

/// Any failure of a command.
#[derive(Debug)]
pub enum Error {
    /// Bad flags or environment.
    Config(ConfigError),
    /// Bad certificate or key.
    Material(MaterialError),
    /// Vault failed.
    Vault(VaultError),
    /// Roles Anywhere failed.
    Session(SessionError),
    /// STS GetCallerIdentity failed (`--verify`).
    Verify(String),
    /// A file could not be written.
    Output {
        /// What it was.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else.
    Other(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Material(_) => 2,
            Error::Vault(_) => 3,
            Error::Session(_) | Error::Verify(_) => 4,
            Error::Output { .. } => 5,
            Error::Other(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Material(e) => e.fmt(f),
            Error::Vault(e) => e.fmt(f),
            Error::Session(e) => e.fmt(f),
            Error::Verify(e) => write!(f, "--verify: {e}"),
            Error::Output { what, path, source } => write!(
                f,
                "cannot write the {what} {}: {source}; check that the folder exists or can be created and is writable",
                path.display()
            ),
            Error::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Material(e) => Some(e),
            Error::Vault(e) => Some(e),
            Error::Session(e) => Some(e),
            Error::Output { source, .. } => Some(source),
            Error::Verify(_) | Error::Other(_) => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
impl From<MaterialError> for Error {
    fn from(e: MaterialError) -> Self {
        Error::Material(e)
    }
}
impl From<VaultError> for Error {
    fn from(e: VaultError) -> Self {
        Error::Vault(e)
    }
}
impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        Error::Session(e)
    }
}

/// The one line printed for a failure: no newlines, whatever the inner errors said.
pub fn one_line(e: &impl fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
