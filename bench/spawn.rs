//! A lean launcher for bench/run.py's peak-RSS runs (compiled by run.py with plain `rustc`,
//! outside the crate: `target/bench/spawn`).
//!
//! Why: Linux records in a new process's `ru_maxrss` the high-water mark of the memory it was
//! forked from (exec keeps the larger of the two), so every child of the ~60 MiB Python driver
//! reports at least ~60 MiB, whatever it really used. Spawned from this ~0.5 MiB static
//! program instead, a child's `ru_maxrss` is its own peak.
//!
//! Usage: `spawn TIMEOUT_MS STDOUT_FILE STDERR_FILE PROGRAM [ARG...]` (environment and working
//! directory are passed through). Prints one JSON line on stdout:
//! `{"wall_ns","status","maxrss_kib","utime_us","stime_us","minflt","majflt","nvcsw","nivcsw","killed"}`
//! where `status` is the raw wait status and `wall_ns` runs from just before the spawn to the
//! return of `wait4`. Exit 0 when the child ran (whatever its exit), 125 when it could not.

use std::fs::File;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[repr(C)]
#[derive(Default)]
struct Timeval {
    sec: i64,
    usec: i64,
}

/// `struct rusage` on x86_64 Linux: two timevals, then 14 longs.
#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: i64,
    ixrss: i64,
    idrss: i64,
    isrss: i64,
    minflt: i64,
    majflt: i64,
    nswap: i64,
    inblock: i64,
    oublock: i64,
    msgsnd: i64,
    msgrcv: i64,
    nsignals: i64,
    nvcsw: i64,
    nivcsw: i64,
}

unsafe extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

fn fail(msg: String) -> ! {
    eprintln!("spawn: {msg}");
    std::process::exit(125)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        fail("usage: spawn TIMEOUT_MS STDOUT_FILE STDERR_FILE PROGRAM [ARG...]".into());
    }
    let timeout_ms: u64 = args[1].parse().unwrap_or_else(|_| fail("bad TIMEOUT_MS".into()));
    let out = File::create(&args[2]).unwrap_or_else(|e| fail(format!("{}: {e}", args[2])));
    let err = File::create(&args[3]).unwrap_or_else(|e| fail(format!("{}: {e}", args[3])));
    let mut cmd = Command::new(&args[4]);
    cmd.args(&args[5..])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));

    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(format!("{}: {e}", args[4])));
    let pid = child.id() as i32;
    // The watchdog starts after the spawn, so it never adds to what the child inherits.
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    {
        let (done, killed) = (done.clone(), killed.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_millis(timeout_ms);
            while Instant::now() < deadline {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !done.load(Ordering::Relaxed) {
                killed.store(true, Ordering::Relaxed);
                // SAFETY: plain syscall on our own, not yet reaped, child.
                unsafe { kill(pid, 9) };
            }
        });
    }
    let mut status = 0i32;
    let mut ru = Rusage::default();
    // SAFETY: valid pointers to locals; `pid` is our child, reaped only here.
    let r = unsafe { wait4(pid, &mut status, 0, &mut ru) };
    let wall = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    if r != pid {
        fail(format!("wait4 returned {r}"));
    }
    std::mem::forget(child); // already reaped: do not let Drop touch it
    println!(
        "{{\"wall_ns\":{},\"status\":{},\"maxrss_kib\":{},\"utime_us\":{},\"stime_us\":{},\"minflt\":{},\"majflt\":{},\"nvcsw\":{},\"nivcsw\":{},\"killed\":{}}}",
        wall.as_nanos(),
        status,
        ru.maxrss,
        ru.utime.sec * 1_000_000 + ru.utime.usec,
        ru.stime.sec * 1_000_000 + ru.stime.usec,
        ru.minflt,
        ru.majflt,
        ru.nvcsw,
        ru.nivcsw,
        killed.load(Ordering::Relaxed)
    );
}
