//! iamra-bootstrap: AWS credentials through IAM Roles Anywhere, with HashiCorp Vault or
//! OpenBao as the certificate authority.
//!
//! Data flows one way (see `docs/architecture.md`): [`cli`] flags and the environment become
//! validated settings (`config`), then a `source` obtains an identity (certificate files, or
//! `vault` login + PKI with a key from `keygen`), then `rolesanywhere` signs and sends
//! `CreateSession`, then a sink hands the credentials on (`aws`: credentials file,
//! credential_process JSON and its cache; `serve`: ECS and IMDS endpoints). The long-running
//! commands refresh through the one loop in `source::refresh`, and both HTTP servers (`serve`,
//! `webhook`) stand on the one skeleton in `server`. The commands in `cmd` are thin drivers
//! over that pipeline. Only what `main` needs is public.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod cli;
mod error;

mod arn;
mod aws;
mod bounded;
mod cmd;
mod config;
mod credentials;
mod endpoints;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod keygen;
mod keys;
mod limits;
mod logging;
mod material;
mod retry;
mod rolesanywhere;
mod secret;
mod serve;
mod server;
mod source;
mod spiffe;
mod timefmt;
mod vault;
mod webhook;

pub use error::Failure;

use cli::{Cli, Command};
use config::ProcessEnv;
use error::Error;

/// Runs the parsed command line: logging, a single-threaded runtime, the command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    run_command(cli).map_err(Failure::from)
}

fn run_command(cli: Cli) -> Result<(), Error> {
    // Offline commands: no runtime, no logs.
    match cli.command {
        Command::Version => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            return writeln!(out, "iamra-bootstrap {}", env!("CARGO_PKG_VERSION"))
                .and_then(|_| out.flush())
                .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")));
        }
        Command::SignString(a) => return cmd::sign_string::run(a),
        Command::ReadCertificateData(a) => return cmd::read_certificate_data::run(a),
        _ => {}
    }
    let env = ProcessEnv;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the runtime: {e}")))?;
    let log = |format, level: &str| {
        logging::init(format, level).map_err(|e| Error::Config(config::ConfigError(e)))
    };
    match cli.command {
        Command::CredentialProcess(a) => {
            // stdout is the JSON and stderr is read by the SDK: only --debug logs.
            log(
                logging::Format::Text,
                if a.ra.debug { "debug" } else { "off" },
            )?;
            rt.block_on(cmd::credential_process::run(a, &env))
        }
        Command::Init(a) => {
            log(
                config::log_format(a.flow.log.log_format),
                a.flow.log_level(),
            )?;
            rt.block_on(cmd::init::run(a, &env))
        }
        Command::Serve(a) => {
            log(
                config::log_format(a.flow.log.log_format),
                a.flow.log_level(),
            )?;
            rt.block_on(cmd::serve::run(a, &env))
        }
        Command::Webhook(a) => {
            log(config::log_format(a.log.log_format), &a.log.log_level)?;
            rt.block_on(cmd::webhook::run(a))
        }
        Command::Update(a) => {
            log(
                config::log_format(a.flow.log.log_format),
                a.flow.log_level(),
            )?;
            rt.block_on(cmd::update::run(a, &env))
        }
        Command::X509CredentialProcess(a) => {
            // As credential-process: stdout is the JSON, only --debug logs.
            log(logging::Format::Text, if a.debug { "debug" } else { "off" })?;
            rt.block_on(cmd::spiffe_helper::credential_process(a, &env))
        }
        Command::X509CredentialFile(a) => {
            log(
                logging::Format::Text,
                if a.common.debug { "debug" } else { "info" },
            )?;
            rt.block_on(cmd::spiffe_helper::credential_file(a, false, &env))
        }
        Command::X509CredentialFileOneshot(a) => {
            log(
                logging::Format::Text,
                if a.common.debug { "debug" } else { "info" },
            )?;
            rt.block_on(cmd::spiffe_helper::credential_file(a, true, &env))
        }
        Command::Version | Command::SignString(_) | Command::ReadCertificateData(_) => Ok(()),
    }
}
