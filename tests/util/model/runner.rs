//! One run of the real binary for the model: spawned with its log in a file, optionally
//! signalled (`kill -9` or SIGTERM) once it has made a chosen number of message-route
//! requests, so the signal lands at a random moment of the crawl whatever the machine's
//! speed; bounded in time.

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::super::Harness;

/// How long a run may take before the model calls it hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The exit code recorded for a run the model had to kill because it hung.
pub const HUNG: i32 = -2;

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Wall clock when it was started and when it ended.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The exit code; -9 when killed, -1 for another signal, [`HUNG`].
    pub code: i32,
    /// Whether the signal was sent before the run ended by itself.
    pub signalled: bool,
    /// Documents the sink accepted during the run.
    pub documents: usize,
    /// The sink's batches (accepted or not) that arrived during the run.
    pub batches: std::ops::Range<usize>,
    pub stderr: String,
}

impl RunRecord {
    pub fn clean(&self) -> bool {
        self.code == 0
    }
}

/// Runs `teams-connector run`; `signal` = (signal number, message requests before it).
pub async fn run(h: &Harness, signal: Option<(i32, u64)>) -> RunRecord {
    let log = h.dir.path().join("run.log");
    let file = std::fs::File::create(&log).expect("log file");
    let before = h.sink.documents().len();
    let first_batch = h.sink.batches().len();
    let base = h.emu.stats().message_requests;
    let start = Utc::now();
    let started = Instant::now();
    let mut child = h
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("the binary starts");
    let mut signalled = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if let Some((sig, after)) = signal.filter(|_| !signalled) {
            if h.emu.stats().message_requests >= base + after {
                // SAFETY: signals a child this process spawned and has not reaped.
                unsafe { libc::kill(child.id() as i32, sig) };
                signalled = true;
            }
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return RunRecord {
                start,
                end: Utc::now(),
                code: HUNG,
                signalled,
                documents: h.sink.documents().len() - before,
                batches: first_batch..h.sink.batches().len(),
                stderr: format!("(hung for {RUN_LIMIT:?}, killed)\n{}", read(&log)),
            };
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| if status.signal() == Some(9) { -9 } else { -1 });
    RunRecord {
        start,
        end: Utc::now(),
        code,
        signalled,
        documents: h.sink.documents().len() - before,
        batches: first_batch..h.sink.batches().len(),
        stderr: read(&log),
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
