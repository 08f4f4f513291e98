//! Everything HTTP that Graph, the identity platform and the ingest share: the one
//! `reqwest` client, retry decisions, the rate limiters and the request counters.

mod client;
mod limits;
mod retry;

pub use client::build_client;
pub use limits::{Limiter, Scope};
pub use retry::{backoff, classify, retry_after, Decision};

use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide request counters for the run summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub retries: AtomicU64,
    pub throttle_wait_ms: AtomicU64,
    /// Answers of Graph and the token endpoint by HTTP status ("error": no answer). A std
    /// `Mutex`: held for one insert, never across an await.
    statuses: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Counters {
    /// Counts one answer: its status, or `None` when the request got no answer.
    pub fn answered(&self, status: Option<u16>) {
        let key = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        if let Ok(mut m) = self.statuses.lock() {
            *m.entry(key).or_default() += 1;
        }
    }

    pub fn statuses(&self) -> std::collections::BTreeMap<String, u64> {
        self.statuses.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
