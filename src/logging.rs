//! Logs: one line per step on stderr, as text or JSON (`--log-format json`), never a secret
//! (secrets are [`crate::secret::Secret`] and print redacted even at debug level).

use tracing_subscriber::fmt::format::FmtSpan;

use crate::cli::LogFormat;
use crate::config::ConfigError;

/// Installs the global subscriber. `level` is `off`, `error`, `warn`, `info` or `debug`.
pub fn init(format: LogFormat, level: &str) -> Result<(), ConfigError> {
    let level = match level.to_ascii_lowercase().as_str() {
        "off" => None,
        "error" => Some(tracing::Level::ERROR),
        "warn" | "warning" => Some(tracing::Level::WARN),
        "info" => Some(tracing::Level::INFO),
        "debug" | "trace" => Some(tracing::Level::DEBUG),
        other => {
            return Err(ConfigError(format!(
                "invalid --log-level {other:?}: use error, warn, info or debug"
            )));
        }
    };
    let Some(level) = level else { return Ok(()) };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .with_span_events(FmtSpan::NONE);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}
