//! The file source: `--certificate`, `--private-key` (optional: a PKCS#12 or key + certificate
//! PEM file as `--certificate`), `--intermediates` and the key password, as
//! `aws_signing_helper` takes them (see [`crate::material::load_files`]). The files are read and
//! checked at every use, so a certificate rotated on disk is picked up by the next `obtain` (the
//! one read for the cache key is reused by the `obtain` right after it, so a pipe works). Each
//! file is read up to its cap ([`crate::limits`]) and before the deadline.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

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
    /// What [`FileSource::key_parts`] read, kept for the `obtain` that follows: a pipe
    /// (`--certificate <(cat cert.pem)`) can be read only once.
    pub(crate) loaded: Mutex<Option<Box<Identity>>>,
}

impl FileSource {
    /// Reads and checks the files now, each before `deadline`.
    fn load(&self, deadline: Instant) -> Result<Identity, MaterialError> {
        material::load_files(
            &self.certificate,
            self.intermediates.as_deref(),
            self.private_key.as_deref(),
            self.password.as_ref(),
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

    pub(super) async fn obtain(
        &self,
        client: &SessionClient,
        deadline: Instant,
    ) -> Result<Obtained, SourceError> {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).take();
        let identity = match loaded {
            Some(id) => *id,
            None => self.load(deadline)?,
        };
        let t = Instant::now();
        let session = client.create_session(&identity, deadline).await?;
        log_session(&session, t);
        Ok(Obtained::new(session, identity.not_after))
    }
}
