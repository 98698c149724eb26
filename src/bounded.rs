//! Reads that end: every file and every HTTP response body is read up to a size cap and a
//! deadline ([`crate::limits`] names the caps).
//!
//! This is the one door for reading files: `clippy.toml` refuses `std::fs::read`,
//! `read_to_string`, `File::open`, `Read::read_to_end` and their `tokio` and `rustls` cousins
//! everywhere else (`tests/test_lint_doors.py` shows a direct read failing the lint). The
//! allowances are below, each on the one function that needs it.
//!
//! Contract:
//! - a file is opened and read on a thread of its own, so a FIFO with no writer (which blocks
//!   in `open(2)`) or a pipe that never closes cannot hold the run past its deadline: the
//!   caller gets [`ReadError::TimedOut`] and the stuck thread is left behind (the process is
//!   about to exit with the error; `serve` re-reads its token file at most once per refresh);
//! - pipes and process substitutions (`--certificate <(cat cert.pem)`) read as files do;
//! - at most `cap + 1` bytes are read: anything longer is [`ReadError::TooLarge`] (so
//!   `/dev/zero` ends at once), whatever the file's reported size;
//! - a response body is read chunk by chunk with the same cap (a `Content-Length` above the cap
//!   is refused before reading) and gives up at the deadline ([`read_body`]).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::limits::human_bytes;

/// Why a bounded read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The OS refused (missing file, permissions, ...).
    Io(std::io::Error),
    /// More than `cap` bytes.
    TooLarge {
        /// The cap in bytes.
        cap: u64,
    },
    /// Nothing (or not all of it) arrived before the deadline: a FIFO with no writer, a pipe
    /// that never closes, a stalled server.
    TimedOut {
        /// How long we waited.
        waited: Duration,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::TooLarge { cap } => write!(
                f,
                "it is larger than the {} this tool reads",
                human_bytes(*cap)
            ),
            ReadError::TimedOut { waited } => write!(
                f,
                "nothing complete arrived within {:.1} s (a FIFO or pipe with no writer?)",
                waited.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    /// The I/O error kind behind this failure (`TimedOut`/`InvalidData` for our own).
    pub(crate) fn kind(&self) -> std::io::ErrorKind {
        match self {
            ReadError::Io(e) => e.kind(),
            ReadError::TooLarge { .. } => std::io::ErrorKind::InvalidData,
            ReadError::TimedOut { .. } => std::io::ErrorKind::TimedOut,
        }
    }

    /// As an `io::Error` (for callers whose error type carries one).
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            ReadError::Io(e) => e,
            other => std::io::Error::new(other.kind(), other.to_string()),
        }
    }
}

/// Reads up to `cap` bytes from `r`; more is [`ReadError::TooLarge`].
#[allow(clippy::disallowed_methods)] // the door itself: `take` bounds the read
pub(crate) fn read_capped(r: impl Read, cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    r.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
    Ok(buf)
}

#[allow(clippy::disallowed_methods)] // the door itself: opened to be read by `read_capped`
fn open_and_read(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    read_capped(f, cap)
}

/// What the reader thread hands back: the result, once, and a condition variable to wait on.
type Slot = std::sync::Arc<(Mutex<Option<Result<Vec<u8>, ReadError>>>, Condvar)>;

/// Reads the file at `path`: at most `cap` bytes, given up at `deadline`. Blocks the calling
/// thread; async code uses [`read_file_async`].
pub(crate) fn read_file(path: &Path, cap: u64, deadline: Instant) -> Result<Vec<u8>, ReadError> {
    let start = Instant::now();
    // Regular files cannot block: no thread needed.
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return open_and_read(path, cap);
    }
    let slot: Slot = Default::default();
    let theirs = slot.clone();
    let path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("bounded-read".into())
        .spawn(move || {
            let r = open_and_read(&path, cap);
            let (m, cv) = &*theirs;
            *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            cv.notify_one();
        })
        .map_err(ReadError::Io)?;
    let (m, cv) = &*slot;
    let guard = m.lock().unwrap_or_else(|p| p.into_inner());
    let (mut guard, _) = cv
        .wait_timeout_while(guard, deadline.saturating_duration_since(start), |r| {
            r.is_none()
        })
        .unwrap_or_else(|p| p.into_inner());
    guard.take().unwrap_or_else(|| {
        Err(ReadError::TimedOut {
            waited: start.elapsed(),
        })
    })
}

/// [`read_file`] without blocking the async runtime (`serve` answers requests meanwhile).
pub(crate) async fn read_file_async(
    path: &Path,
    cap: u64,
    deadline: Instant,
) -> Result<Vec<u8>, ReadError> {
    let start = Instant::now();
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return open_and_read(path, cap);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("bounded-read".into())
        .spawn(move || {
            let _ = tx.send(open_and_read(&path, cap));
        });
    if let Err(e) = spawned {
        return Err(ReadError::Io(e));
    }
    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ReadError::Io(std::io::Error::other(
            "the reader thread died",
        ))),
        Err(_) => Err(ReadError::TimedOut {
            waited: start.elapsed(),
        }),
    }
}

/// Reads a response body: at most `cap` bytes, given up at `deadline`.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    cap: u64,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    let start = Instant::now();
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::Read(ReadError::TooLarge { cap }));
    }
    let mut buf = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline.into(), resp.chunk()).await {
            Err(_) => {
                return Err(BodyError::Read(ReadError::TimedOut {
                    waited: start.elapsed(),
                }));
            }
            Ok(Err(e)) => return Err(BodyError::Http(e)),
            Ok(Ok(None)) => return Ok(buf),
            Ok(Ok(Some(c))) => c,
        };
        if buf.len() as u64 + chunk.len() as u64 > cap {
            return Err(BodyError::Read(ReadError::TooLarge { cap }));
        }
        buf.extend_from_slice(&chunk);
    }
}

/// Why a response body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The connection failed or timed out in reqwest.
    Http(reqwest::Error),
    /// Over the cap, or past the deadline.
    Read(ReadError),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Http(e) => f.write_str(&crate::http::describe(e)),
            BodyError::Read(ReadError::TooLarge { cap }) => {
                write!(f, "the response body is larger than {}", human_bytes(*cap))
            }
            BodyError::Read(ReadError::TimedOut { waited }) => write!(
                f,
                "the response body did not arrive within {:.1} s",
                waited.as_secs_f64()
            ),
            BodyError::Read(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BodyError {}

/// A test fixture's bytes, unbounded (tests only; panics when it cannot be read).
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests read the files they wrote
pub(crate) fn test_read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// [`test_read`] as UTF-8 text.
#[cfg(test)]
pub(crate) fn test_read_string(path: impl AsRef<Path>) -> String {
    String::from_utf8(test_read(path)).expect("UTF-8 fixture")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("iamra-bounded-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn regular_files_read_up_to_the_cap() {
        let d = dir("regular");
        let p = d.join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_file(&p, 10, soon(1000)).unwrap(), b"0123456789");
        assert!(matches!(
            read_file(&p, 9, soon(1000)),
            Err(ReadError::TooLarge { cap: 9 })
        ));
        let e = read_file(&d.join("missing"), 10, soon(1000)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn dev_zero_stops_at_the_cap() {
        let t = Instant::now();
        let e = read_file(Path::new("/dev/zero"), 1024 * 1024, soon(5000)).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(e.to_string().contains("1 MiB"), "{e}");
    }

    #[test]
    fn a_fifo_without_a_writer_times_out_and_one_with_a_writer_reads() {
        let d = dir("fifo");
        let p = d.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&p).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("no mkfifo: skipped");
            return;
        }
        let t = Instant::now();
        let e = read_file(&p, 100, soon(300)).unwrap_err();
        assert!(matches!(e, ReadError::TimedOut { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        // A fresh FIFO: the timed-out reader above is still waiting on the first one.
        let p = d.join("fifo2");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&p)
                .status()
                .unwrap()
                .success()
        );
        let p2 = p.clone();
        let writer = std::thread::spawn(move || std::fs::write(&p2, b"hello"));
        assert_eq!(read_file(&p, 100, soon(5000)).unwrap(), b"hello");
        writer.join().unwrap().unwrap();
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn async_reads_do_not_block_the_runtime() {
        let d = dir("async");
        let p = d.join("fifo");
        if !std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        let ticker = tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            true
        });
        let e = read_file_async(&p, 100, soon(300)).await.unwrap_err();
        assert!(matches!(e, ReadError::TimedOut { .. }), "{e}");
        assert!(ticker.await.unwrap());
        let f = d.join("f");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(read_file_async(&f, 1, soon(300)).await.unwrap(), b"x");
        std::fs::remove_dir_all(d).unwrap();
    }
}
