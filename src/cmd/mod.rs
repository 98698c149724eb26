//! The commands: thin drivers that take their settings from [`crate::config`], obtain
//! credentials from a [`crate::source::Source`] and hand them to a sink.
//!
//! | command | source | sink |
//! |---|---|---|
//! | `init` | Vault | credentials file (+ region in the config file), once |
//! | `credential-process` | files or Vault | credential_process JSON on stdout, through the cache |
//! | `serve` | files or Vault | ECS endpoint, IMDSv2, credentials file, refreshed |
//! | `update` | files or Vault | one profile of the credentials file, refreshed (or `--once`) |
//! | `sign-string`, `read-certificate-data` | a key or certificate file | stdout (offline) |
//!
//! `webhook` obtains no credentials: it injects `init` or `serve` into pods.

pub(crate) mod credential_process;
pub(crate) mod init;
pub(crate) mod read_certificate_data;
pub(crate) mod serve;
pub(crate) mod sign_string;
pub(crate) mod update;
pub(crate) mod webhook;
