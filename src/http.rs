//! HTTP clients: reqwest on rustls with `ring`, the one crypto provider in the tree.
//!
//! AWS calls trust the public roots built into the binary (`webpki-roots`), so the tool works
//! in a `scratch` image with no CA files. Vault calls trust `VAULT_CACERT`/`VAULT_CAPATH` when
//! given (replacing the public roots, as Vault's Go client does). Proxies from the environment
//! are used only when asked (`--with-proxy` for AWS, as the reference helper does).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which roots a client trusts.
#[derive(Debug, Clone)]
pub(crate) enum Roots {
    /// The Mozilla roots compiled in.
    Public,
    /// Exactly these certificates.
    Custom(Vec<CertificateDer<'static>>),
}

/// How to build a client.
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    pub(crate) roots: Roots,
    /// Skip certificate verification entirely (`--no-verify-ssl`, `VAULT_SKIP_VERIFY`).
    pub(crate) insecure: bool,
    /// Use `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment.
    pub(crate) proxy_from_env: bool,
    /// TCP+TLS connect timeout.
    pub(crate) connect_timeout: Duration,
    /// Whole-request timeout (one attempt).
    pub(crate) request_timeout: Duration,
}

/// Builds a reqwest client per `opts`.
pub(crate) fn client(opts: &ClientOptions) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut store = RootCertStore::empty();
        match &opts.roots {
            Roots::Public => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::Custom(certs) => {
                for c in certs {
                    store
                        .add(c.clone())
                        .map_err(|e| format!("unusable CA certificate: {e}"))?;
                }
            }
        }
        builder.with_root_certificates(store).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("iamra-bootstrap/", env!("CARGO_PKG_VERSION")));
    if !opts.proxy_from_env {
        b = b.no_proxy();
    }
    b.build().map_err(|e| format!("HTTP client setup: {e}"))
}

/// Accepts any server certificate (still checks handshake signatures are well-formed).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A one-line description of a reqwest error, with its innermost cause (no URLs with secrets
/// are ever built, so the URL may show).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = e.source();
    let mut last = None;
    while let Some(s) = src {
        last = Some(s.to_string());
        src = s.source();
    }
    if let Some(l) = last {
        msg.push_str(": ");
        msg.push_str(&l);
    }
    msg
}

/// The TLS certificate problem behind `e`, if any: retrying cannot fix those. reqwest boxes
/// the rustls error where a downcast cannot reach it, so rustls's own text is matched
/// (`tests/test_vault_tls_and_sources.py` guards it).
pub(crate) fn certificate_failure(e: &reqwest::Error) -> Option<String> {
    use std::error::Error as _;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(rest) = s.to_string().strip_prefix("invalid peer certificate: ") {
            return Some(rest.to_string());
        }
        src = s.source();
    }
    None
}

static NETWORK_MICROS: AtomicU64 = AtomicU64::new(0);

/// Awaits `f` (a request and its response body), adding the time to [`network_ms`].
pub(crate) async fn timed<F: Future>(f: F) -> F::Output {
    let t = Instant::now();
    let out = f.await;
    NETWORK_MICROS.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
    out
}

/// Milliseconds this process has spent waiting on HTTP calls (the benchmark subtracts it from
/// the wall time to get the tool's own cost).
pub(crate) fn network_ms() -> f64 {
    NETWORK_MICROS.load(Ordering::Relaxed) as f64 / 1000.0
}
