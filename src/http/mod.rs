//! Everything HTTP that Graph, the identity platform and the ingest share: the one
//! `reqwest` client, the one retry policy, capped body reads, the rate limiters and the
//! request counters.

mod body;
mod client;
mod limits;
mod retry;

pub use body::{read_capped, read_error_body, BigBodies, BodyError, Read};
pub use client::build_client;
pub use limits::{rank, Limiter, Scope};
pub use retry::{retry_after, status_retry, Action, Policy, Reason, Retry, Stopped};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// A request that got no complete answer, with its cause chain (DNS, TLS, proxy, reset)
/// and without the URL: a URL can carry a delta token or credentials.
#[derive(Debug, Clone)]
pub struct TransportError {
    summary: &'static str,
    causes: Arc<str>,
}

impl TransportError {
    pub fn new(e: &reqwest::Error) -> Self {
        let summary = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else if e.is_body() || e.is_decode() {
            "connection dropped mid-body"
        } else {
            "request failed"
        };
        // reqwest's own line says only "error sending request"; the causes say why.
        let mut causes: Vec<String> = Vec::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let line = s.to_string();
            if causes.last() != Some(&line) {
                causes.push(line);
            }
            source = s.source();
        }
        TransportError {
            summary,
            causes: causes.join(": ").into(),
        }
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.causes.is_empty() {
            f.write_str(self.summary)
        } else {
            write!(f, "{} ({})", self.summary, self.causes)
        }
    }
}

impl std::error::Error for TransportError {}

/// The path of `url`, for messages: no host credentials, no query (tokens live there).
pub fn path_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| "an unparsable URL".into())
}

/// The host (and port, when the URL names one) a `Location` header points at; relative
/// ones resolve against `base`.
pub fn location_host(headers: &reqwest::header::HeaderMap, base: &str) -> String {
    let location = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok());
    let Some(location) = location else {
        return "no Location".into();
    };
    let target = url::Url::parse(base).and_then(|b| b.join(location)).ok();
    match target
        .as_ref()
        .and_then(|u| Some((u.host_str()?, u.port())))
    {
        Some((host, Some(port))) => format!("{host}:{port}"),
        Some((host, None)) => host.to_string(),
        None => "an unparsable Location".into(),
    }
}
