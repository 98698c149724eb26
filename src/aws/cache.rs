//! The `credential-process` cache: SDKs run the process for every new client and at every
//! refresh, and CreateSession allows 10 requests a second per account, so results are kept.
//!
//! Contract:
//! - one file per key, `<dir>/<sha256 of every input that changes the result>.json`, mode 0600
//!   in a 0700 folder (`--cache-dir`, `IAMRA_CACHE_DIR`, else `$XDG_CACHE_HOME/iamra-bootstrap`);
//!   the key covers the certificate chain, ARNs, region, endpoint, duration, session name and
//!   the Vault source, so different certificates or ARNs never share an entry;
//! - an entry is reused only while more than 15 minutes of validity remain (botocore refreshes
//!   15 minutes before expiry, so it would otherwise be handed credentials it rejects);
//! - `<key>.lock` is held (an advisory `flock`) from the read to the write, so two processes
//!   started at once create one session and the second reads it; writes are atomic.

use std::fs::OpenOptions;
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::process_json;
use crate::credentials::Credentials;
use crate::fsutil;

/// Entries with less validity than this are not reused.
pub(crate) const MIN_REMAINING_SECONDS: i64 = 15 * 60;

/// A cache folder.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    pub(crate) dir: PathBuf,
}

/// Builds a cache key from every input that changes the result.
#[derive(Clone)]
pub(crate) struct KeyBuilder(ring::digest::Context);

impl KeyBuilder {
    /// An empty key.
    pub(crate) fn new() -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"iamra-bootstrap cache v1\0");
        KeyBuilder(ctx)
    }

    /// Adds one named input (length-prefixed, so inputs cannot run together).
    pub(crate) fn add(mut self, name: &str, value: &[u8]) -> Self {
        for part in [name.as_bytes(), value] {
            self.0.update(&(part.len() as u64).to_be_bytes());
            self.0.update(part);
        }
        self
    }

    /// The hex key.
    pub(crate) fn finish(self) -> String {
        hex::encode(self.0.finish())
    }
}

impl Default for KeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl Cache {
    /// Returns cached credentials for `key` with enough validity left at `now`, or runs
    /// `create` (holding the key's lock) and stores its result. Cache I/O problems are logged
    /// and never fail the call.
    pub(crate) async fn get_or_create<E, F, Fut>(
        &self,
        key: &str,
        now: impl Fn() -> OffsetDateTime,
        create: F,
    ) -> Result<Credentials, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credentials, E>>,
    {
        let entry = self.dir.join(format!("{key}.json"));
        let lock = fsutil::create_private_dir(&self.dir)
            .and_then(|_| {
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(0o600)
                    .open(self.dir.join(format!("{key}.lock")))
            })
            .and_then(|f| f.lock().map(|_| f));
        let lock = match lock {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "credential cache unusable; continuing without it");
                None
            }
        };
        if lock.is_some()
            && let Some(c) = std::fs::read(&entry)
                .ok()
                .and_then(|b| process_json::from_json(&b))
            && c.seconds_left(now()) > MIN_REMAINING_SECONDS
        {
            tracing::debug!(expires = %c.expiration_rfc3339(), "credentials from cache");
            return Ok(c);
        }
        let creds = create().await?;
        if lock.is_some()
            && let Err(e) = fsutil::write_atomic(&entry, process_json::to_json(&creds).as_bytes())
        {
            tracing::warn!(path = %entry.display(), error = %e, "could not write the credential cache");
        }
        drop(lock);
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::credentials::fixture as creds;

    #[tokio::test]
    async fn reuses_only_with_15_minutes_left() {
        let dir = std::env::temp_dir().join(format!("iamra-cache-{}", std::process::id()));
        let cache = Cache { dir: dir.clone() };
        let t0 = time::macros::datetime!(2025-01-01 00:00:00 UTC);
        let key = KeyBuilder::new().add("role", b"r").finish();
        let mut calls = 0;
        let c: Result<_, ()> = cache
            .get_or_create(
                &key,
                || t0,
                || {
                    calls += 1;
                    async { Ok(creds(t0 + time::Duration::hours(1))) }
                },
            )
            .await;
        c.unwrap();
        let c: Result<_, ()> = cache
            .get_or_create(
                &key,
                || t0 + time::Duration::minutes(44),
                || {
                    calls += 1;
                    async { Ok(creds(t0 + time::Duration::hours(2))) }
                },
            )
            .await;
        assert_eq!(c.unwrap().expiration, t0 + time::Duration::hours(1));
        let c: Result<_, ()> = cache
            .get_or_create(
                &key,
                || t0 + time::Duration::minutes(46),
                || {
                    calls += 1;
                    async { Ok(creds(t0 + time::Duration::hours(2))) }
                },
            )
            .await;
        assert_eq!(c.unwrap().expiration, t0 + time::Duration::hours(2));
        assert_eq!(calls, 2);
        let mode = std::fs::metadata(dir.join(format!("{key}.json")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(key, KeyBuilder::new().add("role", b"s").finish());
        assert_ne!(
            KeyBuilder::new().add("a", b"bc").finish(),
            KeyBuilder::new().add("ab", b"c").finish()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
