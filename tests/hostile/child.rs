//! The real binary as a watched child process: its peak memory, a memory ceiling and a
//! deadline past which it is killed (so a hole that makes it balloon or hang fails the test
//! quickly instead of taking the CI box down), and signals sent to it while it runs.
//!
//! The peak is the kernel's high-water mark `VmHWM` of `/proc/<pid>/status`, polled every
//! few milliseconds: it is reset by `exec`, so it measures the connector alone. (`wait4`'s
//! `ru_maxrss` is not: it keeps the resident size the child had as a fork of the test
//! process before `exec`, well over 100 MiB here.) Growth in the last poll interval before
//! exit can be missed; a cap that works holds memory flat long before that.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{Harness, Run};

/// When to give up on the child.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Killed once it has been running this long.
    pub deadline: Duration,
    /// Killed once its resident memory passes this many MiB.
    pub rss_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(20),
            rss_mib: 512,
        }
    }
}

impl Limits {
    pub fn deadline(secs: u64) -> Limits {
        Limits {
            deadline: Duration::from_secs(secs),
            ..Limits::default()
        }
    }
}

/// How a watched run ended.
pub struct Watched {
    /// `code` is the exit status, or minus the signal number when a signal killed it (so a
    /// default-action SIGTERM death is never mistaken for a clean exit 143).
    pub run: Run,
    /// Peak resident memory, MiB.
    pub peak_mib: u64,
    /// From spawn to exit.
    pub elapsed: Duration,
    /// Why the watcher killed it, if it did.
    pub killed: Option<String>,
}

impl Watched {
    /// Everything a failed assertion needs to show.
    pub fn describe(&self) -> String {
        format!(
            "exit {} after {:.1}s, peak {} MiB, killed: {:?}\nstderr:\n{}",
            self.run.code,
            self.elapsed.as_secs_f64(),
            self.peak_mib,
            self.killed,
            tail(&self.run.stderr, 4000)
        )
    }
}

/// The last `n` bytes of `s` (on a char boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The binary with `h`'s config and environment and the given log format.
pub fn command(h: &Harness, log_format: &str, args: &[&str]) -> Command {
    h.write_config();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_teams-connector"));
    cmd.arg("--config")
        .arg(h.config_path())
        .args(["--log-format", log_format])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&h.env);
    cmd
}

/// A started child.
pub struct Running {
    pub pid: i32,
    pub started: Instant,
    done: Arc<AtomicBool>,
    outcome: tokio::task::JoinHandle<Watched>,
}

impl Running {
    pub fn signal(&self, sig: i32) {
        if !self.done.load(Ordering::SeqCst) {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    pub async fn wait(self) -> Watched {
        self.outcome.await.expect("watcher")
    }
}

pub fn spawn(mut cmd: Command, limits: Limits) -> Running {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let pid = child.id() as i32;
    let started = Instant::now();
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    // Reaped by wait4 below, not by `Child`, which never waits on drop.
    drop(child);
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(Mutex::new(None));
    let guard = std::thread::spawn({
        let (done, killed) = (done.clone(), killed.clone());
        move || guard(pid, started, limits, &done, &killed)
    });
    let outcome = tokio::task::spawn_blocking({
        let done = done.clone();
        move || {
            // Exited but not reaped until the guard has stopped: its pid cannot be reused
            // while the guard may still signal it.
            wait_exit(pid);
            let elapsed = started.elapsed();
            done.store(true, Ordering::SeqCst);
            let peak_kib = guard.join().unwrap_or(0);
            let code = reap(pid);
            let killed = killed.lock().unwrap_or_else(|e| e.into_inner()).take();
            Watched {
                run: Run {
                    code,
                    stdout: out.join().unwrap_or_default(),
                    stderr: err.join().unwrap_or_default(),
                },
                peak_mib: peak_kib / 1024,
                elapsed,
                killed,
            }
        }
    });
    Running {
        pid,
        started,
        done,
        outcome,
    }
}

/// Spawns, waits, and reports.
pub async fn watch(cmd: Command, limits: Limits) -> Watched {
    spawn(cmd, limits).wait().await
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Kills the child past the deadline or the memory ceiling; polls every 5 ms and returns
/// the highest `VmHWM` seen, in KiB.
fn guard(
    pid: i32,
    started: Instant,
    limits: Limits,
    done: &AtomicBool,
    killed: &Mutex<Option<String>>,
) -> u64 {
    let mut peak = 0;
    while !done.load(Ordering::SeqCst) {
        let (rss, hwm) = memory_kib(pid).unwrap_or((0, 0));
        peak = peak.max(hwm);
        let why = if started.elapsed() > limits.deadline {
            Some(format!("still running after {:?}", limits.deadline))
        } else if rss / 1024 > limits.rss_mib {
            Some(format!(
                "resident memory {} MiB passed {} MiB",
                rss / 1024,
                limits.rss_mib
            ))
        } else {
            None
        };
        if let Some(why) = why {
            *killed.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            // SAFETY: kill(2) on our own child; `done` is checked first so it is not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return peak;
        }
        #[allow(clippy::disallowed_methods)] // a watcher thread of the test, not product code
        std::thread::sleep(Duration::from_millis(5));
    }
    peak
}

/// `VmRSS` and `VmHWM` in KiB, while the process lives.
fn memory_kib(pid: i32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Waits until `pid` has exited, leaving it unreaped.
fn wait_exit(pid: i32) {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waiting on our own child with a valid out-pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Reaps `pid`: its exit code, or minus the signal that killed it.
fn reap(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting on our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return -1;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        -1
    }
}
