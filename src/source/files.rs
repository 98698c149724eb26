//! The file source: `--certificate`, `--private-key` (optional: a PKCS#12 or key + certificate
//! PEM file as `--certificate`), `--intermediates` and the key password, as
//! `aws_signing_helper` takes them (see [`crate::material::load_files`]). The files are read and
//! checked at every use, so a certificate rotated on disk is picked up by the next `obtain` (the
//! one read for the cache key is reused by the `obtain` right after it, so a pipe works). Each
//! file is read up to its cap ([`crate::limits`]) and before the deadline.
//!
//! Rotation (cert-manager, csi-driver-spiffe and SPIRE rewrite the files in place or swap a
//! symlink to a new folder):
//! - a pair caught mid-rotation (key and certificate that do not match, a half-written file)
//!   is read again every 250 ms for up to [`SETTLE`] before `obtain` fails; a path that does
//!   not exist fails at once (rotations swap files, they do not leave them missing, and the
//!   long-running commands try again at their next refresh);
//! - [`FileSource::fingerprint`] digests what the files hold now (following symlinks), and
//!   [`FileSource::changed`] resolves as soon as they change (read every [`WATCH_EVERY`]): the
//!   refresh loop ([`super::refresh`]) watches the files when the certificate in use expires
//!   before the credentials it minted, and after a failed refresh.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{Obtained, SourceError, log_session};
use crate::material::{self, Identity, MaterialError};
use crate::rolesanywhere::session::SessionClient;
use crate::secret::Secret;

/// The files, as given.
#[derive(Debug)]
pub(crate) struct FileSource {
    pub(crate) certificate: PathBuf,
    pub(crate) private_key: Option<PathBuf>,
    pub(crate) intermediates: Option<PathBuf>,
    /// `--pkcs8-password[-file]`: decrypts an encrypted PKCS#8 key or a PKCS#12 file.
    pub(crate) password: Option<Secret>,
    /// The PKCS#11 module and PIN, the TPM and its key password, for keys in hardware.
    pub(crate) stores: Box<crate::keys::StoreOptions>,
    /// What [`FileSource::key_parts`] read, kept for the `obtain` that follows: a pipe
    /// (`--certificate <(cat cert.pem)`) can be read only once.
    pub(crate) loaded: Mutex<Option<Box<Identity>>>,
}

/// How long a pair caught mid-rotation is read again before `obtain` fails.
pub(crate) const SETTLE: Duration = Duration::from_secs(3);
/// Between two reads while settling.
const SETTLE_EVERY: Duration = Duration::from_millis(250);
/// How often watched files are read for a rotation.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the files held when read: a digest of their bytes (or of the read error).
pub(crate) type Fingerprint = [u8; 32];

impl FileSource {
    /// Reads and checks the files now, each before `deadline`.
    fn load(&self, deadline: Instant) -> Result<Identity, MaterialError> {
        material::load_files(
            &self.certificate,
            self.intermediates.as_deref(),
            self.private_key.as_deref(),
            self.password.as_ref(),
            &self.stores,
            OffsetDateTime::now_utc(),
            deadline,
        )
    }

    pub(super) fn key_parts(
        &self,
        deadline: Instant,
    ) -> Result<Vec<(&'static str, Vec<u8>)>, SourceError> {
        let id = self.load(deadline)?;
        let mut parts = vec![("leaf", id.leaf_der.clone())];
        parts.extend(id.chain_der.iter().map(|c| ("chain", c.clone())));
        parts.push(("public_key", id.key.public_key_bits()));
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(id));
        Ok(parts)
    }

    /// Reads the files, again and again for up to [`SETTLE`] (never past `deadline`) while
    /// they do not make a usable pair: a rotation may be half done.
    async fn load_settled(&self, deadline: Instant) -> Result<Identity, MaterialError> {
        let give_up = (Instant::now() + SETTLE).min(deadline);
        loop {
            match self.load(deadline) {
                Ok(id) => return Ok(id),
                Err(e) if !could_be_mid_rotation(&e) => return Err(e),
                Err(e) if Instant::now() + SETTLE_EVERY < give_up => {
                    tracing::debug!(error = %e, "certificate files not usable yet, reading them again");
                    tokio::time::sleep(SETTLE_EVERY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The digest of the files' bytes as they are now (following symlinks).
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let files = [
            Some(&self.certificate),
            self.private_key.as_ref(),
            self.intermediates.as_ref(),
        ];
        for p in files.into_iter().flatten() {
            // Bounded like every read: a FIFO or /dev/zero cannot stall or flood the watcher.
            let read = crate::bounded::read_file(
                p,
                crate::limits::MAX_CERTIFICATE_FILE,
                Instant::now() + WATCH_EVERY,
            );
            match read {
                Ok(bytes) => {
                    ctx.update(&(bytes.len() as u64).to_be_bytes());
                    ctx.update(&bytes);
                }
                Err(e) => ctx.update(format!("unreadable: {:?}", e.kind()).as_bytes()),
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Resolves within [`WATCH_EVERY`] of the files no longer holding what `before` digests
    /// (never, while they still do).
    pub(crate) async fn changed(&self, before: Fingerprint) {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if self.fingerprint() != before {
                tracing::info!(certificate = %self.certificate.display(), "the certificate files changed: refreshing now");
                return;
            }
        }
    }

    pub(super) async fn obtain(
        &self,
        client: &SessionClient,
        deadline: Instant,
    ) -> Result<Obtained, SourceError> {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).take();
        let identity = match loaded {
            Some(id) => *id,
            None => self.load_settled(deadline).await?,
        };
        tracing::debug!(serial = %identity.serial_decimal, certificate = %self.certificate.display(), "read the certificate files");
        let t = Instant::now();
        let session = client.create_session(&identity, deadline).await?;
        log_session(&session, t);
        Ok(Obtained::new(session, identity.not_after))
    }
}

/// Whether reading the files again could cure `e`: not for a path that does not exist, nor
/// for a key refused for what it is (its type, size or encryption), which no rotation
/// half-done explains.
fn could_be_mid_rotation(e: &MaterialError) -> bool {
    use crate::keys::KeyError as K;
    match e {
        MaterialError::Read { source, .. } => source.kind() != std::io::ErrorKind::NotFound,
        MaterialError::Key { source, .. } => !matches!(
            source,
            K::Encrypted
                | K::Pkcs12NeedsPassword
                | K::UnsupportedEncryption(_)
                | K::TooCostly(_)
                | K::LegacyEncryptedPem
                | K::KeyStore(_)
                | K::RsaSize(_)
                | K::Unsupported(_)
                | K::TimedOut { .. }
                // A token or TPM that refused: a wrong PIN or password counts toward a
                // lockout, so it is never tried again.
                | K::Hardware(_)
        ),
        MaterialError::BadCertificate { .. } | MaterialError::Rejected { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "iamra-files-{name}-{}-{}",
            std::process::id(),
            crate::retry::random_unit().to_bits()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn fingerprint_follows_contents_and_symlink_swaps() {
        let d = tmp("fp");
        for v in ["a", "b"] {
            std::fs::create_dir_all(d.join(v)).unwrap();
            std::fs::write(d.join(v).join("tls.crt"), format!("cert {v}")).unwrap();
            std::fs::write(d.join(v).join("tls.key"), format!("key {v}")).unwrap();
        }
        std::os::unix::fs::symlink(d.join("a"), d.join("current")).unwrap();
        let f = FileSource {
            certificate: d.join("current/tls.crt"),
            private_key: Some(d.join("current/tls.key")),
            intermediates: None,
            password: None,
            stores: Default::default(),
            loaded: Default::default(),
        };
        let first = f.fingerprint();
        assert_eq!(first, f.fingerprint());
        // Symlink swap, as the Kubernetes atomic writer does.
        std::os::unix::fs::symlink(d.join("b"), d.join("next")).unwrap();
        std::fs::rename(d.join("next"), d.join("current")).unwrap();
        let second = f.fingerprint();
        assert_ne!(first, second);
        // Rewritten in place.
        std::fs::write(d.join("b/tls.key"), "key c").unwrap();
        assert_ne!(second, f.fingerprint());
        // A missing file is a state of its own, not an error.
        std::fs::remove_file(d.join("b/tls.key")).unwrap();
        assert_ne!(f.fingerprint(), second);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_change_ends_the_wait() {
        let d = tmp("wait");
        std::fs::write(d.join("c"), "1").unwrap();
        std::fs::write(d.join("k"), "1").unwrap();
        let f = FileSource {
            certificate: d.join("c"),
            private_key: Some(d.join("k")),
            intermediates: None,
            password: None,
            stores: Default::default(),
            loaded: Default::default(),
        };
        let before = f.fingerprint();
        let path = d.join("c");
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::write(path, "2").unwrap();
        });
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(30), f.changed(before))
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        writer.await.unwrap();
        // Unchanged files: no end.
        let unchanged = tokio::time::timeout(
            2 * WATCH_EVERY + Duration::from_millis(200),
            f.changed(f.fingerprint()),
        );
        assert!(unchanged.await.is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_file_fails_at_once() {
        let d = tmp("missing");
        let f = FileSource {
            certificate: d.join("nope.pem"),
            private_key: Some(d.join("nope.key")),
            intermediates: None,
            password: None,
            stores: Default::default(),
            loaded: Default::default(),
        };
        let t = Instant::now();
        let e = f
            .load_settled(Instant::now() + Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(t.elapsed() < SETTLE_EVERY, "{:?}", t.elapsed());
        assert!(e.to_string().contains("nope.pem"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_half_rotated_pair_is_read_again() {
        let ca = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x.test".into()]).unwrap();
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&ca).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let d = tmp("settle");
        std::fs::write(d.join("c"), cert.pem()).unwrap();
        std::fs::write(d.join("k"), other.serialize_pem()).unwrap();
        let f = FileSource {
            certificate: d.join("c"),
            private_key: Some(d.join("k")),
            intermediates: None,
            password: None,
            stores: Default::default(),
            loaded: Default::default(),
        };
        // Mismatched for good: the error after SETTLE.
        let t = Instant::now();
        assert!(
            f.load_settled(Instant::now() + Duration::from_secs(60))
                .await
                .is_err()
        );
        assert!(t.elapsed() >= SETTLE - SETTLE_EVERY);
        // The matching key arrives 600 ms later: read again, then fine.
        let key = d.join("k");
        let pem = ca.serialize_pem();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            std::fs::write(key, pem).unwrap();
        });
        f.load_settled(Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        writer.await.unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
