//! The webhook's serving certificate: rustls (the `ring` provider) with a certificate resolver
//! whose certificate and key are re-read when their files change.
//!
//! cert-manager (or the kubelet updating a Secret volume) replaces both files; [`watch`] looks at
//! their metadata every [`POLL`] and loads the pair again when it changed. A pair that does not
//! load (half-written, key not matching) is logged and the previous one kept, so a rotation in
//! progress never takes the webhook down. TLS 1.2 and 1.3, ALPN `http/1.1`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How often the files are checked.
pub(crate) const POLL: Duration = Duration::from_secs(5);

/// A certificate or key file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The current certificate, swapped on reload.
#[derive(Debug)]
pub(crate) struct Store {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: RwLock<Stamp>,
    /// Successful reloads after the first load.
    pub(crate) reloads: AtomicU64,
    /// Failed reload attempts (the previous pair kept).
    pub(crate) reload_failures: AtomicU64,
    /// The certificate's notAfter, Unix seconds.
    pub(crate) not_after: AtomicI64,
}

/// What identifies a file version: modification time, length, inode.
type Stamp = [(Option<SystemTime>, u64, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len(), m.ino()),
        Err(_) => (None, 0, 0),
    };
    [one(cert), one(key)]
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How long one read of the pair may take (a FIFO with no writer gives up here).
const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Loads and checks a certificate chain and its key (PEM), each file read through
/// [`crate::bounded`].
fn load(cert: &Path, key: &Path) -> Result<(CertifiedKey, i64), TlsError> {
    let deadline = std::time::Instant::now() + READ_WAIT;
    let cert_pem = crate::bounded::read_file(cert, crate::limits::MAX_CERTIFICATE_FILE, deadline)
        .map_err(|e| {
        TlsError(format!(
            "cannot read --tls-cert {}: {e}; pass the PEM certificate (tls.crt)",
            cert.display()
        ))
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .map(|c| c.map(|c| c.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("--tls-cert {}: bad PEM: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "--tls-cert {} holds no certificate; pass the PEM certificate (tls.crt)",
            cert.display()
        )));
    }
    let key_pem = zeroize::Zeroizing::new(
        crate::bounded::read_file(key, crate::limits::MAX_PRIVATE_KEY_FILE, deadline).map_err(
            |e| {
                TlsError(format!(
                    "cannot read --tls-key {}: {e}; pass the PEM private key (tls.key)",
                    key.display()
                ))
            },
        )?,
    );
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "cannot read --tls-key {}: {e}; pass the PEM private key (tls.key)",
            key.display()
        ))
    })?;
    let ck = CertifiedKey::from_der(certs, key_der, &provider()).map_err(|e| {
        TlsError(format!(
            "--tls-key {} does not fit --tls-cert {}: {e}",
            key.display(),
            cert.display()
        ))
    })?;
    let not_after = x509_parser::parse_x509_certificate(&ck.cert[0])
        .map(|(_, c)| c.validity().not_after.timestamp())
        .unwrap_or(0);
    Ok((ck, not_after))
}

impl Store {
    /// Loads the pair once; an error here stops the webhook before it listens.
    pub(crate) fn open(cert_path: &Path, key_path: &Path) -> Result<Arc<Store>, TlsError> {
        let s = stamp(cert_path, key_path);
        let (ck, not_after) = load(cert_path, key_path)?;
        Ok(Arc::new(Store {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(ck)),
            stamp: RwLock::new(s),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            not_after: AtomicI64::new(not_after),
        }))
    }

    /// Reloads when the files changed since the last look; true when a new pair is in use.
    pub(crate) fn check(&self) -> bool {
        let now = stamp(&self.cert_path, &self.key_path);
        {
            let mut last = self.stamp.write().unwrap_or_else(|p| p.into_inner());
            if *last == now {
                return false;
            }
            *last = now;
        }
        match load(&self.cert_path, &self.key_path) {
            Ok((ck, not_after)) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ck);
                self.not_after.store(not_after, Ordering::Relaxed);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                true
            }
            Err(e) => {
                // Retried at the next change (cert-manager writes both files).
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "serving certificate changed but does not load; keeping the previous one");
                false
            }
        }
    }

    /// A rustls server configuration resolving to the current pair.
    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

#[derive(Debug)]
struct Resolver(Arc<Store>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Checks the files every [`POLL`] for as long as the webhook runs.
pub(crate) async fn watch(store: Arc<Store>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        store.check();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![cn.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn reloads_on_change_and_keeps_the_old_pair_on_a_bad_one() {
        let dir = std::env::temp_dir().join(format!("iamra-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
        let (c1, k1) = pair("one.test");
        std::fs::write(&c, &c1).unwrap();
        std::fs::write(&k, &k1).unwrap();
        let store = Store::open(&c, &k).unwrap();
        let first = store.current.read().unwrap().cert[0].clone();
        assert!(!store.check(), "unchanged");
        // a new certificate with the old key: refused, old pair kept
        let (c2, k2) = pair("two.test");
        std::fs::write(&c, &c2).unwrap();
        assert!(!store.check());
        assert_eq!(store.reload_failures.load(Ordering::Relaxed), 1);
        assert_eq!(store.current.read().unwrap().cert[0], first);
        // then its key: loaded
        std::fs::write(&k, format!("{k2}\n")).unwrap();
        assert!(store.check());
        assert_ne!(store.current.read().unwrap().cert[0], first);
        assert!(store.not_after.load(Ordering::Relaxed) > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_errors_name_the_flag() {
        let e = Store::open(Path::new("/nonexistent/c"), Path::new("/nonexistent/k")).unwrap_err();
        assert!(e.0.contains("--tls-cert"), "{e}");
    }
}
