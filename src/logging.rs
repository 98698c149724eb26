//! Logs: one line per step on stderr, as text or JSON (`--log-format json`), never a secret
//! (secrets are [`crate::secret::Secret`] and print redacted even at debug level).

use std::time::Instant;

use tracing_subscriber::fmt::format::FmtSpan;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

/// Installs the global subscriber. `level` is `off`, `error`, `warn`, `info` or `debug`; any
/// other value is refused with the message to print.
pub(crate) fn init(format: Format, level: &str) -> Result<(), String> {
    let level = match level.to_ascii_lowercase().as_str() {
        "off" => None,
        "error" => Some(tracing::Level::ERROR),
        "warn" | "warning" => Some(tracing::Level::WARN),
        "info" => Some(tracing::Level::INFO),
        "debug" | "trace" => Some(tracing::Level::DEBUG),
        other => {
            return Err(format!(
                "invalid --log-level {}: use error, warn, info or debug",
                crate::limits::quote(other)
            ));
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
        Format::Text => builder.try_init(),
        Format::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// Milliseconds since `t`, to the microsecond, for step logs.
pub(crate) fn ms_since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}
