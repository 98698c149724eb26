//! `serve`'s `/metrics`: its counters and gauges, written by the shared renderer
//! ([`crate::server::metrics`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::server::Reply;
use crate::server::metrics::Page;

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
    /// The `/metrics` page; the gauges are seconds until expiry (absent before the first
    /// credentials).
    pub(crate) fn render(&self, creds_left: Option<i64>, cert_left: Option<i64>) -> Reply {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut page = Page::default();
        page.counter(
            "iamra_refreshes_total",
            "Successful credential refreshes.",
            n(&self.refreshes),
        )
        .counter(
            "iamra_refresh_failures_total",
            "Failed credential refresh attempts.",
            n(&self.failures),
        )
        .counter(
            "iamra_credential_requests_served_total",
            "Credential requests answered with credentials.",
            n(&self.served),
        )
        .counter(
            "iamra_credential_requests_refused_total",
            "Credential requests refused or failed.",
            n(&self.refused),
        )
        .gauge(
            "iamra_credentials_expiry_seconds",
            "Seconds until the current credentials expire.",
            creds_left,
        )
        .gauge(
            "iamra_certificate_expiry_seconds",
            "Seconds until the current certificate expires.",
            cert_left,
        );
        page.reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let m = Metrics::default();
        m.refreshes.fetch_add(2, Ordering::Relaxed);
        let r = m.render(Some(100), None);
        assert_eq!(r.content_type, crate::server::metrics::CONTENT_TYPE);
        let t = r.body_text();
        assert!(t.contains("# TYPE iamra_refreshes_total counter\niamra_refreshes_total 2\n"));
        assert!(t.contains("iamra_credentials_expiry_seconds 100\n"));
        assert!(!t.contains("iamra_certificate_expiry_seconds"));
    }
}
