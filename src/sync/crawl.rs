//! What every channel task of a run shares, in three parts with one job each: the
//! [`Services`] it calls, the [`Plan`] it follows, and the [`RunState`] through which the
//! tasks coordinate (stop, the users map, a dead ingest, an abort).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::channel::Range;
use crate::exit::Fatal;
use crate::graph::Graph;
use crate::ingest::Output;
use crate::progress::Progress;
use crate::shutdown::Shutdown;
use crate::state::Store;
use crate::transform::{Directory, Transformer};

pub(super) struct Crawl {
    pub services: Services,
    pub plan: Plan,
    pub run: RunState,
}

/// The clients and the store the channel crawls use.
pub(super) struct Services {
    /// Shared with the discovery tasks.
    pub graph: Arc<Graph>,
    /// Cursors and progress; sled is internally synchronised.
    pub store: Arc<Store>,
    pub transformer: Transformer,
    /// Where documents go: the ingest, or stdout for a dry run.
    pub output: Output,
    /// Counters the progress line reads (channels finished, documents acknowledged).
    pub progress: Arc<Progress>,
}

/// What this run does, from the config and the flags.
pub(super) struct Plan {
    pub include_replies: bool,
    /// Threads created this recently are swept for late replies.
    pub reply_window: Duration,
    /// A channel's reply sweep runs at most this often (zero: every round).
    pub reply_sweep_every: Duration,
    pub batch_size: usize,
    /// A channel's first round reads messages modified after this.
    pub first_since: DateTime<Utc>,
    pub mode: Mode,
}

/// Incremental (delta and the reply sweep), a backfill of a date range (the list), or
/// `forget`: the list read again to delete what one person wrote.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Incremental,
    Backfill { range: Range, restart: bool },
    Forget { range: Range, restart: bool },
}

/// How the channel tasks of one run coordinate. Field by field:
pub(super) struct RunState {
    /// Signals and the `--max-duration` deadline: every wait ends when it fires.
    pub shutdown: Shutdown,
    /// User id → mail: set once by the directory task, read-only after. Channel tasks wait
    /// for it only before their first document (the list loads while the first pages are
    /// fetched); `ready` turns true when it is set or failed.
    directory: OnceLock<Directory>,
    ready: watch::Receiver<bool>,
    /// Set when the ingest stayed unavailable: the other channels stop instead of each
    /// waiting out its own retries.
    ingest_down: AtomicBool,
    /// A failure that ends the whole run (sign-in, state store). A std `Mutex`: set once,
    /// never held across an await.
    abort: Mutex<Option<Fatal>>,
    /// `forget`: the job's digest, set once before the channel tasks start; their stored
    /// progress is keyed by it.
    job: OnceLock<String>,
}

impl RunState {
    /// The state of a new run, and the sender that announces the users map.
    pub fn new(shutdown: Shutdown) -> (RunState, watch::Sender<bool>) {
        let (tx, ready) = watch::channel(false);
        let state = RunState {
            shutdown,
            directory: OnceLock::new(),
            ready,
            ingest_down: AtomicBool::new(false),
            abort: Mutex::new(None),
            job: OnceLock::new(),
        };
        (state, tx)
    }

    /// Whether channel tasks must stop taking work: a signal, the deadline or an abort.
    pub fn stopping(&self) -> bool {
        self.shutdown.is_cancelled() || self.abort.lock().map(|a| a.is_some()).unwrap_or(true)
    }

    /// The users map, once loaded; `None` if loading failed (the run is then aborting).
    pub async fn directory(&self) -> Option<&Directory> {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
        self.directory.get()
    }

    pub fn set_directory(&self, dir: Directory) {
        let _ = self.directory.set(dir);
    }

    pub fn ingest_down(&self) -> bool {
        self.ingest_down.load(Ordering::Relaxed)
    }

    pub fn mark_ingest_down(&self) {
        self.ingest_down.store(true, Ordering::Relaxed);
    }

    /// Ends the run with `f` (the first abort wins).
    pub fn abort(&self, f: Fatal) {
        if let Ok(mut a) = self.abort.lock() {
            a.get_or_insert(f);
        }
    }

    /// `forget`'s job digest (`None` outside `forget`, or for a dry run).
    pub fn job(&self) -> Option<&str> {
        self.job.get().map(String::as_str)
    }

    pub fn set_job(&self, digest: String) {
        let _ = self.job.set(digest);
    }

    pub fn take_abort(&self) -> Option<Fatal> {
        self.abort.lock().ok().and_then(|mut a| a.take())
    }
}
