//! The one retry policy for every endpoint: Graph, the ingest and the token endpoint.
//!
//! Each endpoint turns one attempt into an [`Action`] (vector's `RetryLogic`): done, a
//! final failure, or a retry *with its reason*. [`Policy::run`] is the only attempt loop:
//! it sleeps cancel-aware between attempts (`Retry-After` wins over full-jitter backoff),
//! counts retries and gives up after `max_retries` failures. A 429 is pacing, not failure
//! (issue 11): it never uses up `max_retries`; signals and `--max-duration` bound it.
//!
//! What is retried is decided by the endpoints with the shared helpers here: 429, 5xx and
//! transport errors (timeouts, resets, refused connections, broken bodies) are retried;
//! other statuses are final (DESIGN.md, "Throttling" and "Ingest contract").

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::{Counters, TransportError};
use crate::shutdown::{Cancelled, Shutdown};

/// Why an attempt is worth repeating, kept for logs and for the final error.
#[derive(Debug, Clone)]
pub enum Reason {
    /// The server answered this status (429, 5xx).
    Status(u16),
    /// No (complete) answer: timeout, refused connection, reset, a body cut short.
    Transport(TransportError),
    /// The identity platform's `temporarily_unavailable` and the like: a fixed phrase.
    Said(&'static str),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Status(s) => write!(f, "HTTP {s}"),
            Reason::Transport(e) => write!(f, "{e}"),
            Reason::Said(s) => f.write_str(s),
        }
    }
}

/// How a retry counts: failures use up `max_retries`, throttling does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failure,
    Throttled,
}

/// A retry decision: why, when (a `Retry-After`, or the policy's backoff) and how it counts.
#[derive(Debug, Clone)]
pub struct Retry {
    pub reason: Reason,
    pub after: Option<Duration>,
    pub kind: Kind,
}

impl Retry {
    pub fn failure(reason: Reason, after: Option<Duration>) -> Self {
        Retry {
            reason,
            after,
            kind: Kind::Failure,
        }
    }

    pub fn throttled(after: Option<Duration>) -> Self {
        Retry {
            reason: Reason::Status(429),
            after,
            kind: Kind::Throttled,
        }
    }
}

/// What one attempt came to.
pub enum Action<T, E> {
    Done(T),
    /// Final: retrying cannot help.
    Fail(E),
    Retry(Retry),
}

/// Why [`Policy::run`] returned without a result.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The endpoint's own final failure.
    Failed(E),
    /// `max_retries` failures in a row (or a throttling that never ended); the last reason.
    Exhausted { attempts: u32, last: Reason },
    /// A signal or `--max-duration` ended the wait.
    Cancelled,
}

/// 429s in a row after which even pacing gives up: a limit Graph never lifts is an outage.
/// At Graph's usual `Retry-After` of a few seconds this is many minutes.
const MAX_THROTTLED: u32 = 200;

/// The retry policy of one endpoint.
pub struct Policy<'a> {
    pub max_retries: u32,
    pub shutdown: &'a Shutdown,
    pub counters: &'a Counters,
    /// For the debug line of each retry: "Graph", "ingest", "token endpoint".
    pub endpoint: &'static str,
}

impl Policy<'_> {
    /// Runs `attempt` until it is done, fails for good, or the policy gives up.
    pub async fn run<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, Stopped<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Action<T, E>, Cancelled>>,
    {
        let (mut failures, mut throttled) = (0u32, 0u32);
        loop {
            let retry = match attempt().await.map_err(|Cancelled| Stopped::Cancelled)? {
                Action::Done(t) => return Ok(t),
                Action::Fail(e) => return Err(Stopped::Failed(e)),
                Action::Retry(r) => r,
            };
            let n = match retry.kind {
                Kind::Failure => &mut failures,
                Kind::Throttled => &mut throttled,
            };
            let limit = match retry.kind {
                Kind::Failure => self.max_retries,
                Kind::Throttled => MAX_THROTTLED,
            };
            if *n >= limit {
                return Err(Stopped::Exhausted {
                    attempts: failures + throttled + 1,
                    last: retry.reason,
                });
            }
            *n += 1;
            let delay = retry.after.unwrap_or_else(|| backoff(*n - 1));
            Counters::add(&self.counters.retries, 1);
            tracing::debug!(
                endpoint = self.endpoint,
                failures,
                throttled,
                reason = %retry.reason,
                delay_ms = delay.as_millis() as u64,
                "Request failed; retrying."
            );
            let waited = std::time::Instant::now();
            let slept = self.shutdown.sleep(delay).await;
            Counters::add(
                &self.counters.throttle_wait_ms,
                waited.elapsed().as_millis() as u64,
            );
            slept.map_err(|Cancelled| Stopped::Cancelled)?;
        }
    }
}

/// The retry every endpoint gives a status: 429 throttles, 5xx fails for now (501 and 505
/// included: DESIGN says 5xx is retried), anything else is for the endpoint to decide.
pub fn status_retry(status: StatusCode, headers: &HeaderMap) -> Option<Retry> {
    let after = retry_after(headers);
    match status.as_u16() {
        429 => Some(Retry::throttled(after)),
        s if status.is_server_error() => Some(Retry::failure(Reason::Status(s), after)),
        _ => None,
    }
}

/// Longest wait we accept from a `Retry-After`, so a bogus header cannot park the run.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// `Retry-After` as decimal seconds (`2.128`) or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(
                secs.min(MAX_RETRY_AFTER.as_secs_f64()),
            ));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default().min(MAX_RETRY_AFTER))
}

const BASE: Duration = Duration::from_millis(500);
const CAP: Duration = Duration::from_secs(60);

/// Full-jitter exponential backoff: uniform in `[0, min(cap, base·2^attempt)]`.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE.saturating_mul(1u32 << attempt.min(16)).min(CAP);
    ceiling.mul_f64(random_unit())
}

/// A random number in `[0, 1)` from the standard library's per-process hash keys; enough
/// for jitter.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_decimal_seconds() {
        assert_eq!(
            retry_after(&headers("2.128")),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(retry_after(&headers("10")), Some(Duration::from_secs(10)));
        assert_eq!(retry_after(&headers("1e300")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&headers("soon")), None);
    }

    #[test]
    fn retry_after_that_is_not_utf8_is_ignored() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_bytes(b"\xff\xfe1").unwrap());
        assert_eq!(retry_after(&h), None, "falls back to the computed backoff");
    }

    #[test]
    fn retry_after_http_date_in_the_past_is_zero() {
        let d = retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(d, Some(Duration::ZERO));
    }

    #[test]
    fn backoff_stays_under_its_cap() {
        for attempt in 0..40 {
            assert!(backoff(attempt) <= CAP);
        }
    }

    #[test]
    fn every_server_error_retries_and_429_throttles() {
        let h = HeaderMap::new();
        let r = status_retry(StatusCode::TOO_MANY_REQUESTS, &h).unwrap();
        assert_eq!(r.kind, Kind::Throttled);
        for s in [500, 501, 502, 503, 504, 505, 507] {
            let r = status_retry(StatusCode::from_u16(s).unwrap(), &h).unwrap();
            assert_eq!(r.kind, Kind::Failure, "{s}");
        }
        assert!(status_retry(StatusCode::BAD_REQUEST, &h).is_none());
        assert!(status_retry(StatusCode::NOT_FOUND, &h).is_none());
        assert!(status_retry(StatusCode::OK, &h).is_none());
    }

    fn policy<'a>(shutdown: &'a Shutdown, counters: &'a Counters) -> Policy<'a> {
        Policy {
            max_retries: 2,
            shutdown,
            counters,
            endpoint: "test",
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_use_up_the_retries_and_waits_honour_retry_after() {
        let (shutdown, counters) = (Shutdown::new(), Counters::default());
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let out: Result<(), Stopped<()>> = policy(&shutdown, &counters)
            .run(|| async {
                calls.fetch_add(1, Ordering::Relaxed);
                Ok(Action::Retry(Retry::failure(
                    Reason::Status(503),
                    Some(Duration::from_secs(3)),
                )))
            })
            .await;
        assert!(matches!(out, Err(Stopped::Exhausted { attempts: 3, .. })));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(6),
            "two Retry-After waits"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_does_not_use_up_the_retries() {
        let (shutdown, counters) = (Shutdown::new(), Counters::default());
        let calls = AtomicU32::new(0);
        let out: Result<u32, Stopped<()>> = policy(&shutdown, &counters)
            .run(|| async {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                Ok(if n < 10 {
                    Action::Retry(Retry::throttled(Some(Duration::from_secs(1))))
                } else {
                    Action::Done(n)
                })
            })
            .await;
        assert_eq!(out.ok(), Some(10), "ten 429s, then an answer");
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_ends_a_retry_wait_at_once() {
        let (shutdown, counters) = (Shutdown::new(), Counters::default());
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            trigger.trigger(crate::shutdown::Signal::Terminate);
        });
        let started = tokio::time::Instant::now();
        let out: Result<(), Stopped<()>> = policy(&shutdown, &counters)
            .run(|| async {
                Ok(Action::Retry(Retry::failure(
                    Reason::Status(503),
                    Some(Duration::from_secs(20)),
                )))
            })
            .await;
        assert!(matches!(out, Err(Stopped::Cancelled)));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
