//! SIGINT/SIGTERM → cancellation, and the cancel-aware sleep every wait goes through.
//!
//! A [`Shutdown`] is passed to everything that waits (retries, throttling, the crawl), so
//! a signal stops work at the next wait instead of after it; tests trigger it directly.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Which signal asked us to stop; decides exit 130 or 143.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
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
            tracing::warn!(signal = ?sig, "Signal received; finishing in-flight work and saving progress.");
            this.trigger(sig);
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
