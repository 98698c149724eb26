//! The commands: thin drivers that take their settings from [`crate::config`], obtain
//! credentials from a [`crate::source::Source`] and hand them to a sink.
//!
//! | command | source | sink |
//! |---|---|---|
//! | `init` | Vault or SPIFFE | credentials file (+ region in the config file), once |
//! | `credential-process` | files, Vault or SPIFFE | credential_process JSON on stdout, through the cache |
//! | `serve` | files, Vault or SPIFFE | ECS endpoint, IMDSv2, credentials file, refreshed |
//! | `update` | files, Vault or SPIFFE | one profile of the credentials file, refreshed (or `--once`) |
//! | `sign-string`, `read-certificate-data` | a key or certificate file | stdout (offline) |
//!
//! `x509-credential-process`, `x509-credential-file[-oneshot]` ([`spiffe_helper`]) are
//! `aws-spiffe-workload-helper`'s command lines over `credential-process` and `update`.
//!
//! `webhook` obtains no credentials: it injects `init` or `serve` into pods.

pub(crate) mod credential_process;
pub(crate) mod init;
pub(crate) mod read_certificate_data;
pub(crate) mod serve;
pub(crate) mod sign_string;
pub(crate) mod spiffe_helper;
pub(crate) mod update;
pub(crate) mod webhook;
