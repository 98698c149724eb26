//! Writing secret files safely: a temp file in the same folder (0600, created exclusively),
//! written, fsynced, renamed over the target, then the folder fsynced. A reader sees the old
//! file or the new one, never a mix; a failure leaves the old file as it was.
//!
//! Several files that must change together ([`Staged`]): every temp file is written and
//! fsynced first, and only then are they renamed, so a failure while writing any of them
//! leaves all targets as they were (a target that is a folder is refused while staging, so the
//! renames that follow do not fail on it).
//!
//! Temp files are named `.<name>.tmp-<pid>-<8 hex>`. A run killed between write and rename
//! leaves one behind (complete credentials, 0600): the next write into that folder removes
//! those whose process is gone (`/proc/<pid>` absent).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and parents) with mode 0700 when missing.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Atomically replaces `path` with `data`, mode 0600.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    Staged::new(path, data)?.commit()
}

/// A temp file written and fsynced beside its target, renamed over it by [`Staged::commit`];
/// dropped uncommitted, it is removed.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl Staged {
    /// Writes `data` to a new temp file beside `path` (creating the folder 0700 when missing).
    pub(crate) fn new(path: &Path, data: &[u8]) -> io::Result<Staged> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        create_private_dir(&dir)?;
        if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a folder",
            ));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        remove_stale_temp_files(&dir, name);
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{:08x}",
            std::process::id(),
            (crate::retry::random_unit() * u32::MAX as f64) as u32
        ));
        let staged = Staged {
            tmp,
            target: path.to_path_buf(),
            dir,
            committed: false,
        };
        // The writers' one open: a new temp file, written, never read (clippy.toml: the door).
        #[allow(clippy::disallowed_methods)]
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged.tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(staged)
    }

    /// Renames the temp file over the target and fsyncs the folder.
    #[allow(clippy::disallowed_methods)] // opens the folder to fsync it; nothing is read
    pub(crate) fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Whether `file` is one of our temp files for `name` (`.<name>.tmp-<pid>-<8 hex>`), and its pid.
fn temp_file_pid(file: &str, name: &str) -> Option<u32> {
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix(".tmp-")?;
    let (pid, rand) = rest.split_once('-')?;
    let ok = rand.len() == 8 && rand.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| pid.parse().ok()).flatten()
}

/// Removes `.<name>.tmp-<pid>-<rand>` files in `dir` whose process is gone. Only where
/// `/proc` shows processes; a live pid (ours, or reused by another process) is left alone.
fn remove_stale_temp_files(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| temp_file_pid(f, name)) else {
            continue;
        };
        if pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a temp file left by an interrupted run")
                }
                Err(e) => {
                    tracing::debug!(path = %entry.path().display(), error = %e, "cannot remove a stale temp file")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_0600_and_creates_a_0700_parent() {
        let base = std::env::temp_dir().join(format!("iamra-fsutil-{}", std::process::id()));
        let p = base.join("a/b/credentials");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(crate::bounded::test_read(&p), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(base.join("a/b")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::read_dir(base.join("a/b")).unwrap().count(),
            1,
            "no temp file left"
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn staged_files_change_together_or_not_at_all() {
        let base = std::env::temp_dir().join(format!("iamra-staged-{}", std::process::id()));
        fs::create_dir_all(&base).unwrap();
        let (a, b) = (base.join("credentials"), base.join("config"));
        fs::write(&a, b"old a").unwrap();
        fs::create_dir(&b).unwrap(); // a folder where a file should be
        let sa = Staged::new(&a, b"new a").unwrap();
        let e = Staged::new(&b, b"new b").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
        drop(sa);
        assert_eq!(crate::bounded::test_read(&a), b"old a");
        assert_eq!(fs::read_dir(&base).unwrap().count(), 2, "no temp file left");
        fs::remove_dir(&b).unwrap();
        let (sa, sb) = (
            Staged::new(&a, b"new a").unwrap(),
            Staged::new(&b, b"new b").unwrap(),
        );
        sa.commit().unwrap();
        sb.commit().unwrap();
        assert_eq!(crate::bounded::test_read(&a), b"new a");
        assert_eq!(crate::bounded::test_read(&b), b"new b");
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_removed() {
        let base = std::env::temp_dir().join(format!("iamra-stale-{}", std::process::id()));
        fs::create_dir_all(&base).unwrap();
        // pid 0 never names a process in /proc; our own pid is alive.
        let dead = base.join(".credentials.tmp-0-0123abcd");
        let alive = base.join(format!(".credentials.tmp-{}-0123abcd", std::process::id()));
        let other = base.join(".config.tmp-0-0123abcd");
        let foreign = base.join(".credentials.tmp-0-notours");
        for p in [&dead, &alive, &other, &foreign] {
            fs::write(p, b"x").unwrap();
        }
        write_atomic(&base.join("credentials"), b"new").unwrap();
        assert!(!dead.exists(), "a dead run's temp file is removed");
        assert!(alive.exists() && other.exists() && foreign.exists());
        assert_eq!(
            temp_file_pid(".credentials.tmp-42-0000ffff", "credentials"),
            Some(42)
        );
        assert_eq!(
            temp_file_pid(".credentials.tmp-x-0000ffff", "credentials"),
            None
        );
        assert_eq!(
            temp_file_pid("credentials.tmp-42-0000ffff", "credentials"),
            None
        );
        fs::remove_dir_all(base).unwrap();
    }
}
