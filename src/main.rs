//! `iamra-bootstrap`: parse flags, run the command, map the error to one line on stderr and
//! an exit code (see [`iamra_bootstrap::error`]); `init` and `serve` also write the reason to
//! the Kubernetes termination log.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use iamra_bootstrap::cli::{Cli, Command};

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
        Command::Update(a) => Some(a.flow.output.termination_log.clone()),
        Command::CredentialProcess(_)
        | Command::Webhook(_)
        | Command::SignString(_)
        | Command::ReadCertificateData(_)
        | Command::X509CredentialProcess(_)
        | Command::X509CredentialFile(_)
        | Command::X509CredentialFileOneshot(_)
        | Command::Version => None,
    };
    match iamra_bootstrap::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let line = failure.line;
            eprintln!("iamra-bootstrap: error: {line}");
            if let Some(path) = termination_log {
                // Only when it is there to be written (Kubernetes creates it); never create it,
                // never through a symlink (O_NOFOLLOW: a link planted there is not followed), and
                // never waiting on a FIFO without a reader (O_NONBLOCK).
                use std::os::unix::fs::OpenOptionsExt;
                // Opened to be written, never read (clippy.toml: the door).
                #[allow(clippy::disallowed_methods)]
                let log = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&path);
                if let Ok(mut f) = log {
                    use std::io::Write;
                    let _ = f.write_all(line.as_bytes());
                }
            }
            ExitCode::from(failure.exit_code)
        }
    }
}

/// `aws_signing_helper` flags for key stores this tool does not read.
const UNSUPPORTED_HELPER_FLAGS: [&str; 3] = [
    "--cert-selector",
    "--system-store-name",
    "--use-latest-expiring-certificate",
];

/// A clap error as one line; `aws_signing_helper` flags we do not take get their own advice.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        let flag = arg.split('=').next().unwrap_or(arg);
        if UNSUPPORTED_HELPER_FLAGS.contains(&flag) {
            return format!(
                "{flag} (an aws_signing_helper option for system certificate stores) is not supported: export the key to a file for --private-key (or a PKCS#12 file for --certificate), or get the certificate from Vault"
            );
        }
    }
    // clap's first paragraph, on one line: "the following required arguments were not
    // provided:" is followed by the arguments on lines of their own, which must stay.
    let rendered = e.render().to_string();
    let first: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let first = first.join(" ");
    let first = first.trim_start_matches("error: ");
    let first = if first.is_empty() {
        "invalid arguments"
    } else {
        first
    };
    format!("{first}; see --help")
}
