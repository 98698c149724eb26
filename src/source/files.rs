//! The file source: `--certificate`, `--private-key` (optional: a PKCS#12 or key + certificate
//! PEM file as `--certificate`), `--intermediates` and the key password, as
//! `aws_signing_helper` takes them (see [`crate::material::load_files`]). The files are read and checked at every use, so a
//! certificate rotated on disk is picked up by the next `obtain`.

use std::path::PathBuf;
use std::time::Instant;

use time::OffsetDateTime;

use super::{Obtained, SourceError, log_session};
use crate::material::{self, Identity, MaterialError};
use crate::rolesanywhere::session::SessionClient;
use crate::secret::Secret;

/// The files, as given.
#[derive(Debug, Clone)]
pub(crate) struct FileSource {
    pub(crate) certificate: PathBuf,
    pub(crate) private_key: Option<PathBuf>,
    pub(crate) intermediates: Option<PathBuf>,
    /// `--pkcs8-password[-file]`: decrypts an encrypted PKCS#8 key or a PKCS#12 file.
    pub(crate) password: Option<Secret>,
}

impl FileSource {
    /// Reads and checks the files now.
    fn load(&self) -> Result<Identity, MaterialError> {
        material::load_files(
            &self.certificate,
            self.intermediates.as_deref(),
            self.private_key.as_deref(),
            self.password.as_ref(),
            OffsetDateTime::now_utc(),
        )
    }

    pub(super) fn key_parts(&self) -> Result<Vec<(&'static str, Vec<u8>)>, SourceError> {
        let id = self.load()?;
        let mut parts = vec![("leaf", id.leaf_der.clone())];
        parts.extend(id.chain_der.iter().map(|c| ("chain", c.clone())));
        parts.push(("public_key", id.key.public_key_bits()));
        Ok(parts)
    }

    pub(super) async fn obtain(
        &self,
        client: &SessionClient,
        deadline: Instant,
    ) -> Result<Obtained, SourceError> {
        let identity = self.load()?;
        let t = Instant::now();
        let session = client.create_session(&identity, deadline).await?;
        log_session(&session, t);
        Ok(Obtained::new(session, identity.not_after))
    }
}
