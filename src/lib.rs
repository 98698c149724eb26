//! iamra-bootstrap: AWS credentials through IAM Roles Anywhere, with HashiCorp Vault or
//! OpenBao as the certificate authority.
//!
//! Data flows one way: [`config`] (flags and env, validated), then the identity
//! ([`material`] from files, or [`vault`] login + PKI with a key from [`keygen`]), then the
//! signed request ([`rolesanywhere`]), then the session, then a sink in [`aws`] (credentials
//! file, credential_process JSON, cache) or [`serve`] (ECS and IMDS endpoints).
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod arn;
pub mod aws;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod keygen;
pub mod keys;
pub mod logging;
pub mod material;
pub mod retry;
pub mod rolesanywhere;
pub mod secret;
pub mod serve;
pub mod source;
pub mod vault;
