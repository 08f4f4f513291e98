//! SIGINT/SIGTERM and the `--max-duration` deadline → cancellation, and the cancel-aware
//! waits everything goes through.
//!
//! A [`Shutdown`] is passed to everything that waits (requests, retries, throttling, the
//! crawl), so a signal or the deadline stops work at once instead of after the wait; tests
//! trigger it directly. A second SIGINT/SIGTERM ends the process immediately (issue 12
//! item 9): the person pressing Ctrl-C twice does not want to wait for the grace period.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// What asked us to stop; decides exit 130, 143 or 75.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    /// `--max-duration` ran out.
    Deadline,
}

/// Returned by a wait that was cut short by shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<Option<Signal>>>,
    rx: watch::Receiver<Option<Signal>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(None);
        Shutdown {
            tx: Arc::new(tx),
            rx,
        }
    }

    /// Starts a task that turns SIGINT and SIGTERM into [`Shutdown::trigger`].
    pub fn listen_for_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("Cannot install signal handlers; SIGTERM will not save progress.");
                return;
            };
            let sig = tokio::select! {
                _ = term.recv() => Signal::Terminate,
                _ = int.recv() => Signal::Interrupt,
            };
            tracing::warn!(signal = ?sig, "Signal received; finishing in-flight work and saving progress. A second signal ends the process at once.");
            this.trigger(sig);
            let again = tokio::select! {
                _ = term.recv() => Signal::Terminate,
                _ = int.recv() => Signal::Interrupt,
            };
            let code = match again {
                Signal::Interrupt => 130,
                _ => 143,
            };
            tracing::warn!(signal = ?again, "Second signal; exiting now without waiting for in-flight work.");
            // A channel's progress is on disk before its next batch goes: what is in
            // flight, and at most each channel's last acknowledged batch, is resent by the
            // next run.
            #[allow(clippy::disallowed_methods)]
            std::process::exit(code);
        });
    }

    /// Triggers [`Signal::Deadline`] at `at`, unless something else stopped us first.
    pub fn stop_at(&self, at: tokio::time::Instant) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => this.trigger(Signal::Deadline),
                _ = this.cancelled() => {}
            }
        });
    }

    pub fn trigger(&self, sig: Signal) {
        self.tx.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(sig);
                true
            } else {
                false
            }
        });
    }

    pub fn signal(&self) -> Option<Signal> {
        *self.rx.borrow()
    }

    pub fn is_cancelled(&self) -> bool {
        self.signal().is_some()
    }

    /// Resolves once shutdown is triggered.
    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|s| s.is_some()).await;
    }

    /// Runs `fut` unless shutdown comes first (then it is dropped: only for work that is
    /// safe to abandon, like a GET or a wait).
    pub async fn run<T>(&self, fut: impl std::future::Future<Output = T>) -> Result<T, Cancelled> {
        if self.is_cancelled() {
            return Err(Cancelled);
        }
        tokio::select! {
            out = fut => Ok(out),
            _ = self.cancelled() => Err(Cancelled),
        }
    }

    /// Sleeps for `d` unless shutdown comes first.
    pub async fn sleep(&self, d: Duration) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            return Err(Cancelled);
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancelled() => Err(Cancelled),
        }
    }
}
