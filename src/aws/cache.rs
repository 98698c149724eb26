//! The `credential-process` cache: SDKs run the process for every new client and at every
//! refresh, and CreateSession allows 10 requests a second per account, so results are kept.
//!
//! Contract:
//! - one file per key, `<dir>/<sha256 of every input that changes the result>.json`, mode 0600
//!   in a 0700 folder (`--cache-dir`, `IAMRA_CACHE_DIR`, else `$XDG_CACHE_HOME/iamra-bootstrap`);
//!   the key covers the certificate chain, ARNs, region, endpoint, duration, session name and
//!   the Vault source with a digest of the credential its login presents (the ServiceAccount
//!   token or Vault token), so different certificates, identities or ARNs never share an entry;
//! - only what this process's uid owns is used: a cache folder that belongs to another uid or
//!   that group or others may write is not used at all (the run goes on without the cache), and
//!   an entry that is not a regular file of ours that only we may write is never read (it is
//!   replaced by the new entry); either way one warning line goes to stderr at any log level;
//! - an entry is reused only while more than 15 minutes of validity remain (botocore refreshes
//!   15 minutes before expiry, so it would otherwise be handed credentials it rejects);
//! - `<key>.lock` is held (an advisory `flock`) from the read to the write, so two processes
//!   started at once create one session and the second reads it; writes are atomic. The lock
//!   is waited for at most half the time left before the deadline; past that the session is
//!   created without the cache (a stuck holder cannot block the run);
//! - an entry is read only up to [`MAX_CACHE_ENTRY`] bytes and checked like fresh credentials
//!   ([`crate::limits::check_credentials`]) before reuse.

use std::fs::OpenOptions;
use std::future::Future;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::process_json;
use crate::credentials::Credentials;
use crate::fsutil;
use crate::limits::MAX_CACHE_ENTRY;

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
        deadline: Instant,
        create: F,
    ) -> Result<Credentials, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credentials, E>>,
    {
        let entry = self.dir.join(format!("{key}.json"));
        let lock = match fsutil::create_private_dir(&self.dir)
            .and_then(|_| {
                private_to_us(&self.dir, true).inspect_err(|e| {
                    untrusted(&self.dir, e, "the run goes on without the cache");
                })
            })
            .and_then(|_| {
                // The lock file is opened to be locked, never read (clippy.toml: the door).
                #[allow(clippy::disallowed_methods)]
                let lock = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(self.dir.join(format!("{key}.lock")));
                lock
            }) {
            Ok(f) => lock_before(f, lock_wait_deadline(deadline)).await,
            Err(e) => Err(e),
        };
        let lock = match lock {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "credential cache unusable; continuing without it");
                None
            }
        };
        if lock.is_some()
            && entry_is_ours(&entry)
            && let Some(c) = crate::bounded::read_file(&entry, MAX_CACHE_ENTRY, deadline)
                .ok()
                .and_then(|b| process_json::from_json(&b))
            && usable(&c, now())
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

/// Whether `path` (a folder when `dir`, else a regular file, not followed if a symlink) belongs
/// to this process's effective uid and cannot be written by group or others; an error says
/// which of these it is not.
fn private_to_us(path: &Path, dir: bool) -> std::io::Result<()> {
    let meta = if dir {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    let ours = rustix::process::geteuid().as_raw();
    let problem = if dir && !meta.is_dir() {
        "it is not a folder".to_string()
    } else if !dir && !meta.file_type().is_file() {
        "it is not a regular file".to_string()
    } else if meta.uid() != ours {
        format!(
            "it belongs to uid {}, not to this process's uid {ours}",
            meta.uid()
        )
    } else if meta.mode() & 0o022 != 0 {
        format!(
            "group or others may write it (mode {:o}; expected 0700 for the folder, 0600 for entries)",
            meta.mode() & 0o7777
        )
    } else {
        return Ok(());
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        problem,
    ))
}

/// Says, whatever the log level (`credential-process` logs only with `--debug`), that a cache
/// folder or entry is not used because it is not private to us: one line on stderr, which the
/// SDK shows or keeps; a planted entry is a reason to look.
fn untrusted(path: &Path, why: &std::io::Error, then: &str) {
    eprintln!(
        "iamra-bootstrap: warning: credential cache {} not used: {why}; {then}",
        path.display()
    );
}

/// Whether an existing entry may be read: a missing one is simply absent; one that is not a
/// private regular file of ours is not read (it may be planted) and is replaced.
fn entry_is_ours(entry: &Path) -> bool {
    match private_to_us(entry, false) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            untrusted(entry, &e, "it is replaced by a new entry");
            false
        }
    }
}

/// A cache entry is reused only if it is well-formed, unexpired, and has more than
/// [`MIN_REMAINING_SECONDS`] left.
fn usable(c: &Credentials, now: OffsetDateTime) -> bool {
    crate::limits::check_credentials(
        &c.access_key_id,
        c.secret_access_key.expose(),
        c.session_token.expose(),
        c.expiration,
        now,
        None,
    )
    .is_ok()
        && c.seconds_left(now) > MIN_REMAINING_SECONDS
}

/// How often a held lock is tried again.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// The lock is waited for at most half of what is left before `deadline`: another process
/// creating the same session takes well under that, and a holder that is stuck must not cost
/// the whole run (the session is then created without the cache).
fn lock_wait_deadline(deadline: Instant) -> Instant {
    let now = Instant::now();
    now + deadline.saturating_duration_since(now) / 2
}

/// Takes the advisory lock on `f`, polling (without blocking the runtime) until `until`.
async fn lock_before(f: std::fs::File, until: Instant) -> std::io::Result<std::fs::File> {
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if Instant::now() + LOCK_POLL > until {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "another process holds the cache lock",
            ));
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::secret::Secret;

    /// Credentials of a plausible shape (the shared fixture's `sk`/`st` fail the checks).
    fn creds(expiration: OffsetDateTime) -> Credentials {
        Credentials {
            access_key_id: "ASIAABCDEFGHIJKLMNOP".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: Secret::new("IQoJb3JpZ2luX2VjEJr//////////wEaCXVz"),
            expiration,
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn a_held_lock_is_waited_for_only_until_half_the_deadline() {
        let dir = std::env::temp_dir().join(format!("iamra-cache-lock-{}", std::process::id()));
        let cache = Cache { dir: dir.clone() };
        let t0 = OffsetDateTime::now_utc();
        let key = KeyBuilder::new().add("role", b"held").finish();
        std::fs::create_dir_all(&dir).unwrap();
        let holder = std::fs::File::create(dir.join(format!("{key}.lock"))).unwrap();
        holder.lock().unwrap();
        let start = Instant::now();
        let c: Result<_, ()> = cache
            .get_or_create(
                &key,
                || t0,
                Instant::now() + Duration::from_millis(600),
                || async { Ok(creds(t0 + time::Duration::hours(1))) },
            )
            .await;
        assert!(c.is_ok());
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_millis(500),
            "{waited:?}"
        );
        assert!(
            !dir.join(format!("{key}.json")).exists(),
            "not cached without the lock"
        );
        drop(holder);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Runs `get_or_create` once; whether `create` was called.
    async fn created(cache: &Cache, key: &str, t0: OffsetDateTime) -> bool {
        let mut called = false;
        let c: Result<_, ()> = cache
            .get_or_create(
                key,
                || t0,
                soon(),
                || {
                    called = true;
                    async { Ok(creds(t0 + time::Duration::hours(1))) }
                },
            )
            .await;
        c.unwrap();
        called
    }

    #[tokio::test]
    async fn a_folder_others_may_write_is_not_used() {
        let dir = std::env::temp_dir().join(format!("iamra-cache-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cache = Cache { dir: dir.clone() };
        let t0 = OffsetDateTime::now_utc();
        let key = KeyBuilder::new().add("role", b"open").finish();
        // A planted entry with usable credentials is never read, nothing is written there.
        let planted = process_json::to_json(&creds(t0 + time::Duration::hours(1)));
        std::fs::write(dir.join(format!("{key}.json")), &planted).unwrap();
        std::fs::set_permissions(
            dir.join(format!("{key}.json")),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert!(created(&cache, &key, t0).await);
        assert!(created(&cache, &key, t0).await);
        assert!(!dir.join(format!("{key}.lock")).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_entry_not_private_to_us_is_not_read_and_is_replaced() {
        let dir = std::env::temp_dir().join(format!("iamra-cache-entry-{}", std::process::id()));
        let cache = Cache { dir: dir.clone() };
        let t0 = OffsetDateTime::now_utc();
        let key = KeyBuilder::new().add("role", b"entry").finish();
        let entry = dir.join(format!("{key}.json"));
        assert!(created(&cache, &key, t0).await);
        assert!(!created(&cache, &key, t0).await, "our own entry is reused");
        // Writable by others: ignored, then replaced by a private one.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(created(&cache, &key, t0).await);
        assert_eq!(
            std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!created(&cache, &key, t0).await);
        // A symlink to usable credentials: not followed.
        let elsewhere = dir.join("elsewhere.json");
        std::fs::rename(&entry, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        assert!(created(&cache, &key, t0).await);
        // Another uid's entry (only root can make one): not read.
        if std::os::unix::fs::chown(&entry, Some(12345), None).is_ok() {
            assert!(created(&cache, &key, t0).await);
            assert_eq!(
                std::fs::metadata(&entry).unwrap().uid(),
                rustix::process::geteuid().as_raw()
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

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
                soon(),
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
                soon(),
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
                soon(),
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
