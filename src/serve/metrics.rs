//! `/metrics` in the Prometheus text format (version 0.0.4).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters kept by the sidecar.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Successful refreshes.
    pub(crate) refreshes: AtomicU64,
    /// Failed refresh attempts.
    pub(crate) failures: AtomicU64,
    /// Credential requests answered 200.
    pub(crate) served: AtomicU64,
    /// Credential requests refused (auth) or failed (no credentials).
    pub(crate) refused: AtomicU64,
}

impl Metrics {
    /// Renders the metrics; the gauges are seconds until expiry (absent before the first
    /// credentials).
    pub(crate) fn render(&self, creds_left: Option<i64>, cert_left: Option<i64>) -> String {
        let mut out = String::with_capacity(1024);
        let mut counter = |name: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        };
        counter(
            "iamra_refreshes_total",
            "Successful credential refreshes.",
            self.refreshes.load(Ordering::Relaxed),
        );
        counter(
            "iamra_refresh_failures_total",
            "Failed credential refresh attempts.",
            self.failures.load(Ordering::Relaxed),
        );
        counter(
            "iamra_credential_requests_served_total",
            "Credential requests answered with credentials.",
            self.served.load(Ordering::Relaxed),
        );
        counter(
            "iamra_credential_requests_refused_total",
            "Credential requests refused or failed.",
            self.refused.load(Ordering::Relaxed),
        );
        for (name, help, v) in [
            (
                "iamra_credentials_expiry_seconds",
                "Seconds until the current credentials expire.",
                creds_left,
            ),
            (
                "iamra_certificate_expiry_seconds",
                "Seconds until the current certificate expires.",
                cert_left,
            ),
        ] {
            if let Some(v) = v {
                out.push_str(&format!(
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let m = Metrics::default();
        m.refreshes.fetch_add(2, Ordering::Relaxed);
        let t = m.render(Some(100), None);
        assert!(t.contains("# TYPE iamra_refreshes_total counter\niamra_refreshes_total 2\n"));
        assert!(t.contains("iamra_credentials_expiry_seconds 100\n"));
        assert!(!t.contains("iamra_certificate_expiry_seconds"));
    }
}
