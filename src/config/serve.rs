//! `serve`'s own flags ([`ServeArgs`]: listeners, `--port`, `--imds`, the ECS token file,
//! `--hop-limit`) as [`crate::serve::Settings`].

use std::net::SocketAddr;

use super::{ConfigError, err};
use crate::arn::Arn;
use crate::cli::ServeArgs;
use crate::serve::Settings;

/// `serve`'s listeners and endpoints; `role` names the role IMDS lists. `--port N` is IMDSv2
/// on `127.0.0.1:N` (`aws_signing_helper serve`); so is a `serve` from certificate files with
/// nothing else asked for (no ECS token, no credentials file), on `--listen`. Otherwise at
/// least one of the three must be asked for.
pub(super) fn settings(
    a: &ServeArgs,
    role: &Arn,
    from_files: bool,
    writes_file: bool,
) -> Result<Settings, ConfigError> {
    let (listen, listen_flag) = match a.port {
        Some(port) => (SocketAddr::from(([127, 0, 0, 1], port)), "--port"),
        None => (a.listen, "--listen"),
    };
    let helper_style =
        a.auth_token_file.is_none() && !writes_file && (a.port.is_some() || from_files);
    let imds = a.imds || helper_style;
    if a.auth_token_file.is_none() && !imds && !writes_file {
        return err(
            "nothing to serve: pass --auth-token-file (ECS endpoint), --imds, or --credentials-file",
        );
    }
    Ok(Settings {
        listen,
        listen_flag,
        hop_limit: a.hop_limit,
        health_listen: a.health_listen,
        auth_token_file: a.auth_token_file.clone(),
        imds,
        role_name: role.raw.rsplit('/').next().unwrap_or("role").to_string(),
    })
}
