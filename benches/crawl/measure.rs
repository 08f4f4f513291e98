//! Running one connector command as a child process and measuring the process itself:
//! wall time, user+sys CPU (`wait4` of the reaped child: its own CPU, it has no children)
//! and peak RSS.
//!
//! Peak RSS must be the connector's own. `wait4`'s `ru_maxrss` is not: at `exec` the kernel
//! carries the old image's high-water mark over (the parent's, when the child was spawned
//! with `vfork`), so a small connector started by a large parent reports the parent's peak.
//! The run summary's `peak_rss_bytes` (VmHWM read by the connector at the end of its run)
//! is used when the connector logs it; until then `/proc/<pid>/status` VmHWM is polled
//! while the child runs (VmHWM is reset by `exec` and only grows, so the last sample before
//! exit misses at most the final [`POLL`] of growth) and the figure is marked as polled.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often the fallback reads the child's VmHWM.
pub const POLL: Duration = Duration::from_millis(20);

/// Where a peak RSS figure came from.
#[derive(Debug, Clone, Copy)]
pub enum Rss {
    /// `peak_rss_bytes` of the run summary: the connector's own VmHWM.
    Own(u64),
    /// Polled from `/proc/<pid>/status` while the child ran.
    Polled(u64),
    Unknown,
}

/// What one connector command cost and said.
pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
    pub rss: Rss,
    /// The exit code, or `None` when a signal ended it (the watchdog's kill).
    pub code: Option<i32>,
    pub summary: Value,
}

/// Runs `cmd` (stderr to `log`), killing it after `timeout`.
pub fn run(mut cmd: Command, log: &Path, timeout: Duration) -> Measured {
    let log_file = std::fs::File::create(log).expect("connector log");
    cmd.stdout(Stdio::null()).stderr(log_file);
    pin(&mut cmd, Role::Connector);
    let started = Instant::now();
    let child = cmd.spawn().expect("connector starts");
    let pid = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let hwm = Arc::new(AtomicU64::new(0));
    let poller = {
        let (done, hwm) = (done.clone(), hwm.clone());
        std::thread::spawn(move || poll(pid, &done, &hwm, started + timeout))
    };
    // Wait for the exit without reaping: the pid stays the connector's while the poller
    // looks at it.
    // SAFETY: siginfo is plain data, filled by waitid for this child.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    let wall = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let _ = poller.join();
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child it reaps.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(reaped, pid, "wait4 reaps the connector");
    drop(child);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let summary = summary_of(log);
    let rss = match summary["peak_rss_bytes"].as_u64() {
        Some(b) => Rss::Own(b),
        None => match hwm.load(Ordering::SeqCst) {
            0 => Rss::Unknown,
            b => Rss::Polled(b),
        },
    };
    Measured {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        rss,
        code,
        summary,
    }
}

/// Samples VmHWM until `done`; kills the child at `deadline`.
fn poll(pid: libc::pid_t, done: &AtomicBool, hwm: &AtomicU64, deadline: Instant) {
    let path = format!("/proc/{pid}/status");
    while !done.load(Ordering::SeqCst) {
        if let Some(b) = std::fs::read_to_string(&path).ok().and_then(|s| vm_hwm(&s)) {
            hwm.fetch_max(b, Ordering::SeqCst);
        }
        if Instant::now() >= deadline {
            eprintln!("connector still running at the timeout (BENCH_TIMEOUT_SECS): killing it");
            // SAFETY: the child is not reaped yet (waitid above used WNOWAIT), so the pid is ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// `VmHWM:    12345 kB` → bytes.
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The `run_summary` event of a JSON log, or `Null`.
fn summary_of(log: &Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let found = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["target"] == "run_summary");
    found.unwrap_or_else(|| {
        eprintln!("no run_summary from the connector; log: {}", log.display());
        Value::Null
    })
}

/// Who a child process is, for [`pin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Emulator,
    Connector,
}

/// Keeps the emulator and the connector off each other's CPUs: with two or more allowed,
/// the emulator gets the last and the connector the others. Graph is not on the
/// connector's machine; sharing cores with a busy emulator, the connector's CPU per
/// document reads a third to a half higher (caches, migrations, the scheduler, and a
/// second runtime worker: tokio sizes its pool from the CPUs allowed), not from work of
/// its own. `BENCH_PIN=0`, or a single CPU, leaves both where the kernel puts them.
pub fn pin(cmd: &mut Command, role: Role) {
    use std::os::unix::process::CommandExt;
    if std::env::var("BENCH_PIN").is_ok_and(|v| v == "0") {
        return;
    }
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for this process.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut allowed) } != 0 {
        return;
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
        .collect();
    let Some((&last, rest)) = cpus.split_last() else {
        return;
    };
    if rest.is_empty() {
        return;
    }
    // SAFETY: as above; the set is built here and copied into the closure.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    match role {
        Role::Emulator => unsafe { libc::CPU_SET(last, &mut set) },
        Role::Connector => {
            for &c in rest {
                unsafe { libc::CPU_SET(c, &mut set) };
            }
        }
    }
    // SAFETY: sched_setaffinity is a plain system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, size, &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
