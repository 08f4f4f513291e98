//! Group commit for the crawl's resume points and cursors.
//!
//! A channel saves where a killed run would resume after every acknowledged batch. Flushing
//! sled there and then cost 13–20 % of the process's CPU on a fast tenant (each flush
//! hands the write to sled's I/O threads and blocks a runtime thread until it is on disk),
//! and the channel does not need its point on disk until it sends its *next* batch: that
//! alone keeps "a kill resends at most the batch it interrupted". So a save only writes to
//! sled and returns a [`Written`]; before a channel's next POST, [`Commits::durable`] waits
//! until its last save is on disk. One committer flushes for every save made so far: at
//! once when a channel waits, else [`IDLE`] after the first save it has not covered. So a
//! channel that paces its requests mostly finds its save covered already, channels that
//! wait at the same time share a flush (the slower the disk, the more of them), and no
//! runtime thread blocks on the disk.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// How long a save nobody waits for may stay off the disk: the most a kill loses of a
/// channel that finished (its next run resends its last batch).
pub const IDLE: Duration = Duration::from_millis(10);

/// A save in sled that may not be on disk yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "wait for it with Store::durable before relying on the save"]
pub struct Written(u64);

/// How far the flushes got.
#[derive(Debug, Clone)]
enum Durable {
    /// Every save numbered up to here is on disk.
    Through(u64),
    /// A flush failed (sled's error, which holds no message data): no later save is
    /// relied on.
    Failed(String),
}

pub(super) struct Commits {
    db: sled::Db,
    shared: Arc<Shared>,
    committer: OnceLock<()>,
}

struct Shared {
    /// Saves numbered so far.
    saved: AtomicU64,
    durable: watch::Sender<Durable>,
    /// A save was made: the committer has work.
    wake: Notify,
    /// Channels waiting for a save to reach the disk.
    waiting: AtomicU64,
    /// A channel began to wait: the committer flushes now.
    wanted: Notify,
    /// The store was dropped: the committer lets go of the database.
    closed: AtomicBool,
    /// Flushes made (for tests: how well saves share them).
    #[cfg(test)]
    flushes: AtomicU64,
}

impl Commits {
    pub fn new(db: sled::Db) -> Self {
        Commits {
            db,
            shared: Arc::new(Shared {
                saved: AtomicU64::new(0),
                durable: watch::Sender::new(Durable::Through(0)),
                wake: Notify::new(),
                waiting: AtomicU64::new(0),
                wanted: Notify::new(),
                closed: AtomicBool::new(false),
                #[cfg(test)]
                flushes: AtomicU64::new(0),
            }),
            committer: OnceLock::new(),
        }
    }

    /// Numbers a save already written to sled and tells the committer.
    pub fn saved(&self) -> Written {
        let n = self.shared.saved.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.wake.notify_one();
        Written(n)
    }

    /// Waits until `written` is on disk; `Err` holds sled's error when a flush failed.
    pub async fn durable(&self, written: Written) -> Result<(), String> {
        self.start();
        let mut rx = self.shared.durable.subscribe();
        if matches!(&*rx.borrow(), Durable::Through(n) if *n >= written.0) {
            return Ok(());
        }
        // Counted while waiting, also when the wait is dropped (a channel stopped).
        let _waiting = Waiting::new(&self.shared);
        let state = rx
            .wait_for(|d| match d {
                Durable::Through(n) => *n >= written.0,
                Durable::Failed(_) => true,
            })
            .await
            // The sender lives as long as `self`.
            .map(|d| d.clone())
            .unwrap_or_else(|_| Durable::Failed("the state store closed".to_owned()));
        match state {
            Durable::Through(_) => Ok(()),
            Durable::Failed(e) => Err(e),
        }
    }

    /// Starts the committer on the first wait (saves made before it are covered by its
    /// first flush: it reads the count when it flushes).
    fn start(&self) {
        self.committer.get_or_init(|| {
            tokio::spawn(commit(self.db.clone(), self.shared.clone()));
        });
    }
}

/// One channel waiting for the disk, for as long as it exists.
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        shared.wanted.notify_one();
        Waiting(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Commits {
    /// Saves not yet covered go to disk now: a run that ends without a last flush of its
    /// own (an error path) still keeps them.
    fn drop(&mut self) {
        let saved = self.shared.saved.load(Ordering::SeqCst);
        if matches!(&*self.shared.durable.borrow(), Durable::Through(n) if *n < saved) {
            let _ = self.db.flush();
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        self.shared.wanted.notify_one();
    }
}

/// Flushes while there are saves not on disk: at once for a waiting channel, else after
/// [`IDLE`].
async fn commit(db: sled::Db, shared: Arc<Shared>) {
    let mut through = 0;
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        if shared.saved.load(Ordering::SeqCst) <= through {
            shared.wake.notified().await;
            continue;
        }
        // A wake-up left from an earlier wait may come with nobody waiting: wait on.
        let idle = tokio::time::Instant::now() + IDLE;
        while shared.waiting.load(Ordering::SeqCst) == 0 && !shared.closed.load(Ordering::SeqCst) {
            tokio::select! {
                _ = shared.wanted.notified() => {}
                _ = tokio::time::sleep_until(idle) => break,
            }
        }
        // Every save numbered up to here was written to sled before the flush begins.
        let covered = shared.saved.load(Ordering::SeqCst);
        match db.flush_async().await {
            Ok(_) => {
                #[cfg(test)]
                shared.flushes.fetch_add(1, Ordering::SeqCst);
                through = covered;
                shared.durable.send_replace(Durable::Through(covered));
            }
            Err(e) => {
                shared.durable.send_replace(Durable::Failed(e.to_string()));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commits() -> Commits {
        Commits::new(sled::Config::new().temporary(true).open().unwrap())
    }

    fn flushes(c: &Commits) -> u64 {
        c.shared.flushes.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn channels_that_wait_at_the_same_time_share_a_flush() {
        let c = Arc::new(commits());
        let waits: Vec<_> = (0..32)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    let written = c.saved();
                    c.durable(written).await
                })
            })
            .collect();
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
        assert!(flushes(&c) <= 2, "{} flushes for 32 saves", flushes(&c));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_channel_gets_its_flush_at_once() {
        let c = commits();
        let written = c.saved();
        let started = tokio::time::Instant::now();
        c.durable(written).await.unwrap();
        assert!(started.elapsed() < IDLE, "waited {:?}", started.elapsed());
        assert_eq!(flushes(&c), 1);
        // Covered already: no flush, no wait.
        c.durable(written).await.unwrap();
        assert_eq!(flushes(&c), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_save_nobody_waits_for_reaches_the_disk_after_idle() {
        let c = commits();
        let first = c.saved();
        c.durable(first).await.unwrap();
        let second = c.saved();
        tokio::time::sleep(IDLE / 2).await;
        assert_eq!(flushes(&c), 1, "flushed before IDLE with nobody waiting");
        tokio::time::sleep(IDLE).await;
        // sled flushes on its own threads, in real time: give it up to 5 s.
        for _ in 0..500 {
            if flushes(&c) == 2 {
                break;
            }
            // Real time on purpose: the paused clock does not move sled's threads.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(10));
            tokio::task::yield_now().await;
        }
        assert_eq!(flushes(&c), 2);
        let started = tokio::time::Instant::now();
        c.durable(second).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(flushes(&c), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_given_up_no_longer_counts_as_waiting() {
        let c = commits();
        c.durable(c.saved()).await.unwrap();
        let written = c.saved();
        // A channel that stops while waiting: its wait is dropped unfinished.
        let wait = c.durable(written);
        drop(tokio::time::timeout(Duration::ZERO, wait).await);
        assert_eq!(c.shared.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_committer_lets_go_of_the_database_when_the_store_goes() {
        let dir = tempfile::tempdir().unwrap();
        let open = || sled::Config::new().path(dir.path()).open();
        let c = Commits::new(open().unwrap());
        c.durable(c.saved()).await.unwrap();
        drop(c);
        // sled locks its files: opening again works only once every handle is gone.
        let mut reopened = open();
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            reopened = open();
        }
        reopened.unwrap();
    }
}
