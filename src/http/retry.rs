//! Retry decisions as values, and full-jitter backoff.
//!
//! 429 and 503/504 (and 500/502) are retried; a `Retry-After` header, in decimal seconds
//! or as an HTTP date, wins over the computed backoff (Graph throttling guidance). Other
//! statuses are final.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// What to do with a response status.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Try again after `after` (from `Retry-After`) or a computed backoff.
    Retry {
        after: Option<Duration>,
        throttled: bool,
    },
    /// Final: success or a permanent error.
    Done,
}

pub fn classify(status: StatusCode, headers: &HeaderMap) -> Decision {
    match status.as_u16() {
        429 => Decision::Retry {
            after: retry_after(headers),
            throttled: true,
        },
        500 | 502 | 503 | 504 => Decision::Retry {
            after: retry_after(headers),
            throttled: false,
        },
        _ => Decision::Done,
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
            return Some(Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER));
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
    let frac = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(frac)
}

/// A random number from the standard library's per-process hash keys; enough for jitter.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

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
    fn only_throttling_and_server_errors_retry() {
        let h = HeaderMap::new();
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h),
            Decision::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &h),
            Decision::Retry {
                throttled: false,
                ..
            }
        ));
        assert_eq!(classify(StatusCode::BAD_REQUEST, &h), Decision::Done);
        assert_eq!(classify(StatusCode::NOT_FOUND, &h), Decision::Done);
    }
}
