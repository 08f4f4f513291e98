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
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
