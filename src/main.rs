//! `iamra-bootstrap`: parse flags, run the command, map the error to one line on stderr and
//! an exit code (see [`iamra_bootstrap::error`]); `init` and `serve` also write the reason to
//! the Kubernetes termination log.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use iamra_bootstrap::cli::{Cli, Command, LogFormat};
use iamra_bootstrap::config::{Env, ProcessEnv};
use iamra_bootstrap::error::{Error, one_line};
use iamra_bootstrap::{cmd, logging, serve};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                return ExitCode::from(2);
            }
            _ => {
                eprintln!("iamra-bootstrap: error: {}", usage_error(&e));
                return ExitCode::from(2);
            }
        },
    };
    let termination_log = match &cli.command {
        Command::Init(a) => Some(a.flow.output.termination_log.clone()),
        Command::Serve(a) => Some(a.flow.output.termination_log.clone()),
        Command::CredentialProcess(_) => None,
    };
    let result = run(cli);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = one_line(&e);
            eprintln!("iamra-bootstrap: error: {line}");
            if let Some(path) = termination_log {
                // Only when it is there to be written (Kubernetes creates it); never create it.
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                {
                    use std::io::Write;
                    let _ = f.write_all(line.as_bytes());
                }
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// `aws_signing_helper` flags for key stores this tool does not read.
const UNSUPPORTED_HELPER_FLAGS: [&str; 8] = [
    "--pkcs8-password",
    "--cert-selector",
    "--system-store-name",
    "--pkcs11-lib",
    "--tpm-key-password",
    "--no-tpm-key-password",
    "--reuse-pin",
    "--use-latest-expiring-certificate",
];

/// A clap error as one line; `aws_signing_helper` flags we do not take get their own advice.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        let flag = arg.split('=').next().unwrap_or(arg);
        if UNSUPPORTED_HELPER_FLAGS.contains(&flag) {
            return format!(
                "{flag} (an aws_signing_helper option for encrypted keys, PKCS#11, TPM or system certificate stores) is not supported: pass an unencrypted PEM key with --private-key, or get the certificate from Vault"
            );
        }
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    format!("{first}; see --help")
}

fn run(cli: Cli) -> Result<(), Error> {
    let env = ProcessEnv;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the runtime: {e}")))?;
    match cli.command {
        Command::CredentialProcess(a) => {
            // stdout is the JSON and stderr is read by the SDK: only --debug logs.
            logging::init(LogFormat::Text, if a.ra.debug { "debug" } else { "off" })?;
            rt.block_on(cmd::credential_process::run(a, &env as &dyn Env))
        }
        Command::Init(a) => {
            logging::init(a.flow.log.log_format, a.flow.log_level())?;
            rt.block_on(cmd::init::run(a, &env))
        }
        Command::Serve(a) => {
            logging::init(a.flow.log.log_format, a.flow.log_level())?;
            rt.block_on(serve::run(a, &env))
        }
    }
}
