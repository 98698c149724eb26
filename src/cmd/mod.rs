//! The commands: thin drivers that take their settings from [`crate::config`], obtain
//! credentials from a [`crate::source::Source`] and hand them to a sink.
//!
//! | command | source | sink |
//! |---|---|---|
//! | `init` | Vault | credentials file (+ region in the config file), once |
//! | `credential-process` | files or Vault | credential_process JSON on stdout, through the cache |
//! | `serve` | Vault | ECS endpoint, IMDSv2, credentials file, refreshed |
//!
//! `webhook` obtains no credentials: it injects `init` or `serve` into pods.

pub(crate) mod credential_process;
pub(crate) mod init;
pub(crate) mod serve;
pub(crate) mod webhook;
