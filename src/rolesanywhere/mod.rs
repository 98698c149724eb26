//! IAM Roles Anywhere `CreateSession`: the canonical request ([`canonical`]), the signed
//! request ([`sign`]) and the HTTP client ([`session`]), configured by [`Settings`].

pub(crate) mod canonical;
pub(crate) mod session;
pub(crate) mod sign;

use std::time::Duration;

use crate::arn::Target;
use crate::http::{ClientOptions, Roots};
use session::SessionClient;
use sign::{Endpoint, SessionParams};

/// Connect timeout for Roles Anywhere (and STS): within the run's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request's own timeout: within the run's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The session to create and where, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// ARNs and region.
    pub(crate) target: Target,
    pub(crate) endpoint: Endpoint,
    /// Duration and session name.
    pub(crate) params: SessionParams,
    /// `--no-verify-ssl`.
    pub(crate) no_verify_ssl: bool,
    /// `--with-proxy`.
    pub(crate) with_proxy: bool,
    /// `--debug`.
    pub(crate) debug: bool,
}

impl Settings {
    /// A client for these settings (public roots built in); `max_attempts` caps retries below
    /// the deadline.
    pub(crate) fn client(&self, max_attempts: Option<u32>) -> Result<SessionClient, String> {
        let http = crate::http::client(&ClientOptions {
            roots: Roots::Public,
            insecure: self.no_verify_ssl,
            proxy_from_env: self.with_proxy,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        })?;
        Ok(SessionClient {
            http,
            endpoint: self.endpoint.clone(),
            target: self.target.clone(),
            params: self.params.clone(),
            debug: self.debug,
            max_attempts,
        })
    }
}
