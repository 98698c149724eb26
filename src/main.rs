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
                let rendered = e.render().to_string();
                let first = rendered
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ");
                eprintln!("iamra-bootstrap: error: {first}; see --help");
                return ExitCode::from(2);
            }
        },
    };
    let termination_log = match &cli.command {
        Command::Init(a) => Some(a.output.termination_log.clone()),
        Command::Serve(a) => Some(a.output.termination_log.clone()),
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
            logging::init(a.log.log_format, a.log.effective_level(a.ra.debug))?;
            rt.block_on(cmd::init::run(a, &env))
        }
        Command::Serve(a) => {
            logging::init(a.log.log_format, a.log.effective_level(a.ra.debug))?;
            rt.block_on(serve::run(a, &env))
        }
    }
}
