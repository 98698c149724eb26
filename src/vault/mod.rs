//! Vault (or OpenBao): the HTTP client with Vault's conventions ([`client`]), login
//! ([`login`]) and the PKI call that turns a CSR into a certificate ([`pki`]).

pub mod client;
pub mod login;
pub mod pki;

pub use client::{VaultClient, VaultError};
