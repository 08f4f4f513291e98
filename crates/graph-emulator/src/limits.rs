//! Graph's throttling limits on the channel-message routes (delta, message list, replies):
//! a token bucket for the tenant, one per channel and one per user, answering 429 with the
//! `Retry-After` of the scope that ran dry, and the accounting a benchmark needs to judge a
//! client: Retry-After violations per scope and the arrival time of every message request.
//!
//! Graph documents 20 requests/s per app per tenant and 1 request/s per channel for channel
//! messages, "enforced over short windows"
//! (<https://learn.microsoft.com/graph/throttling-limits#microsoft-teams-service-limits>);
//! a bucket holding one second's worth of tokens models that window.
//!
//! A *violation* is a request for a scope that arrives before the wait the emulator last
//! advertised for that scope has ended. Arrival is taken when the request reaches the server,
//! before the configured latency, so a client that waits exactly the advertised time after
//! the 429 reached it is never counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::graph::{throttled_response, Throttle};
use crate::server::Arrival;
use crate::Shared;

/// Rates and bursts of [`crate::Emulator::set_limits`]; `None` rate = no limit for
/// that scope, `None` burst = one second's worth (at least one request).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub tenant_rps: Option<f64>,
    pub tenant_burst: Option<f64>,
    pub channel_rps: Option<f64>,
    pub channel_burst: Option<f64>,
    /// Per user of the access token (all delegated tokens belong to the technical user).
    pub user_rps: Option<f64>,
    pub user_burst: Option<f64>,
}

impl Limits {
    /// Graph's documented limits for channel messages: 20/s per tenant, 1/s per channel.
    pub fn graph() -> Limits {
        Limits {
            tenant_rps: Some(20.0),
            channel_rps: Some(1.0),
            ..Limits::default()
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.tenant_rps.is_none() && self.channel_rps.is_none() && self.user_rps.is_none()
    }
}

/// The scopes a limit applies to, as named in the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    Tenant,
    Channel,
    User,
}

impl ScopeKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ScopeKind::Tenant => "tenant",
            ScopeKind::Channel => "channel",
            ScopeKind::User => "user",
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: Option<f64>, now: Instant) -> Bucket {
        let burst = burst.unwrap_or(rate).max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Refills up to `now`; a request evaluated out of order (an earlier arrival that took
    /// the lock later) leaves the clock where it is.
    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let dt = now.duration_since(self.at).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.at = now;
        }
    }

    /// How long until one token is there (zero when one is there now).
    fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// One scope's bucket and the end of the wait last advertised for it.
#[derive(Debug, Clone, Default)]
struct Scope {
    bucket: Option<Bucket>,
    /// When the last 429 of this scope was decided, and until when it said to wait.
    advertised_at: Option<Instant>,
    advertised_until: Option<Instant>,
}

/// A request that arrives within this long after a 429 of its scope was decided (plus the
/// configured latency, which delays the 429 on its way) was already on the wire before the
/// client could read that 429: concurrent clients always have some in flight. It is
/// answered by the bucket like any other but not counted as a Retry-After violation.
pub(crate) const IN_FLIGHT: Duration = Duration::from_millis(25);

/// What the limiter decided about one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// Scopes whose advertised wait had not ended when the request arrived.
    pub violated: Vec<ScopeKind>,
    /// `Some((retry_after, scopes that ran dry))`: answer 429.
    pub rejected: Option<(Duration, Vec<ScopeKind>)>,
}

/// The buckets of every scope seen so far.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    limits: Limits,
    /// See [`IN_FLIGHT`]; includes the configured latency.
    pub(crate) in_flight: Duration,
    tenant: Scope,
    channels: HashMap<String, Scope>,
    users: HashMap<String, Scope>,
}

impl Limiter {
    /// New limits start with full buckets and forget earlier advertised waits.
    pub(crate) fn set(&mut self, limits: Limits) {
        *self = Limiter {
            limits,
            ..Limiter::default()
        };
    }

    pub(crate) fn active(&self) -> bool {
        !self.limits.is_unlimited()
    }

    /// Decides about a request for `channel` by `user` that arrived at `now`, taking one
    /// token from every scope when all have one.
    pub(crate) fn admit(&mut self, now: Instant, channel: &str, user: &str) -> Verdict {
        let l = self.limits.clone();
        let tenant = &mut self.tenant;
        let chan = self.channels.entry(channel.to_owned()).or_default();
        let usr = self.users.entry(user.to_owned()).or_default();
        let mut scopes = [
            (ScopeKind::Tenant, l.tenant_rps, l.tenant_burst, tenant),
            (ScopeKind::Channel, l.channel_rps, l.channel_burst, chan),
            (ScopeKind::User, l.user_rps, l.user_burst, usr),
        ];
        let mut verdict = Verdict {
            violated: Vec::new(),
            rejected: None,
        };
        let mut dry = Vec::new();
        let mut longest = Duration::ZERO;
        for (kind, rate, burst, scope) in scopes.iter_mut() {
            let seen = scope
                .advertised_at
                .is_some_and(|at| now >= at + self.in_flight);
            if seen && scope.advertised_until.is_some_and(|until| now < until) {
                verdict.violated.push(*kind);
            }
            let Some(rate) = rate.filter(|r| *r > 0.0) else {
                continue;
            };
            let bucket = scope
                .bucket
                .get_or_insert_with(|| Bucket::new(rate, *burst, now));
            bucket.refill(now);
            let wait = ceil_ms(bucket.wait());
            if !wait.is_zero() {
                scope.advertised_at = Some(now);
                scope.advertised_until = Some(now + wait);
                longest = longest.max(wait);
                dry.push(*kind);
            }
        }
        if dry.is_empty() {
            for (_, _, _, scope) in scopes.iter_mut() {
                if let Some(b) = scope.bucket.as_mut() {
                    b.tokens -= 1.0;
                }
            }
        } else {
            verdict.rejected = Some((longest, dry));
        }
        verdict
    }
}

/// Waits are advertised in whole milliseconds, rounded up, so a client that waits exactly
/// the advertised time finds a token.
fn ceil_ms(d: Duration) -> Duration {
    if d.is_zero() {
        return d;
    }
    Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64)
}

/// `Retry-After` in decimal seconds, like Graph's `2.128`.
pub(crate) fn retry_after_header(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The channel id of a message-route path (`/v1.0/teams/{team}/channels/{channel}/messages…`).
fn channel_of(path: &str) -> Option<&str> {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next(), segs.nth(1), segs.next()) {
        (Some("v1.0"), Some("teams"), Some("channels"), Some(ch)) => Some(ch),
        _ => None,
    }
}

/// Middleware in front of the Graph routes, after the token check: enforces the limits on the
/// message routes and keeps the violation and 429 counts.
pub(crate) async fn enforce(State(app): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match decide(&app, &req) {
        None => next.run(req).await,
        Some(wait) => throttled_response(&Throttle {
            remaining: 0,
            status: 429,
            retry_after: Some(retry_after_header(wait)),
        }),
    }
}

/// `Some(retry_after)` when the request must be answered 429.
fn decide(app: &Shared, req: &Request) -> Option<Duration> {
    let path = req.uri().path();
    let limited_route = matches!(
        crate::server::route_of(path),
        Some("delta" | "messages" | "replies")
    );
    let channel = channel_of(path).filter(|_| limited_route)?;
    let arrived = req
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |a| a.0);
    let mut w = app.lock();
    if !w.limiter.active() {
        return None;
    }
    let user = w.tenant.people.users[w.tenant.technical].id.clone();
    w.limiter.in_flight = app.latency() + IN_FLIGHT;
    let verdict = w.limiter.admit(arrived, channel, &user);
    w.stats.record(&verdict);
    verdict.rejected.map(|(wait, _)| wait)
}

/// The most requests in any `window`, counting arrivals (offsets from the start) at or after
/// `from` only.
pub fn max_in_window(arrivals: &[Duration], window: Duration, from: Duration) -> usize {
    let mut times: Vec<Duration> = arrivals.iter().copied().filter(|t| *t >= from).collect();
    times.sort_unstable();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(l: Limits) -> Limiter {
        let mut lim = Limiter::default();
        lim.set(l);
        lim
    }

    #[test]
    fn burst_is_one_second_worth_then_rate() {
        let mut lim = limiter(Limits {
            tenant_rps: Some(5.0),
            ..Limits::default()
        });
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(lim.admit(t0, &format!("c{i}"), "u").rejected, None);
        }
        let v = lim.admit(t0, "c9", "u");
        let (wait, scopes) = v.rejected.expect("sixth is throttled");
        assert_eq!(wait, Duration::from_millis(200));
        assert_eq!(scopes, vec![ScopeKind::Tenant]);
        let early = lim.admit(t0 + Duration::from_millis(100), "c9", "u");
        assert_eq!(early.violated, vec![ScopeKind::Tenant]);
        let on_time = lim.admit(t0 + Duration::from_millis(200), "c9", "u");
        assert!(on_time.violated.is_empty());
        assert_eq!(on_time.rejected, None);
    }

    #[test]
    fn channels_have_their_own_buckets() {
        let mut lim = limiter(Limits {
            channel_rps: Some(1.0),
            ..Limits::default()
        });
        let t0 = Instant::now();
        assert_eq!(lim.admit(t0, "a", "u").rejected, None);
        assert!(lim.admit(t0, "a", "u").rejected.is_some());
        assert_eq!(lim.admit(t0, "b", "u").rejected, None);
        // A rejected request takes no token: the wait stays one second from the first.
        let (wait, _) = lim.admit(t0, "a", "u").rejected.expect("still dry");
        assert_eq!(wait, Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_decimal_seconds() {
        assert_eq!(retry_after_header(Duration::from_millis(2128)), "2.128");
        assert_eq!(ceil_ms(Duration::from_micros(1)), Duration::from_millis(1));
    }

    #[test]
    fn sliding_window_counts_after_warmup() {
        let ms = Duration::from_millis;
        let arrivals = [
            ms(0),
            ms(10),
            ms(20),
            ms(1500),
            ms(1600),
            ms(2400),
            ms(2550),
        ];
        assert_eq!(max_in_window(&arrivals, ms(1000), ms(0)), 3);
        assert_eq!(max_in_window(&arrivals, ms(1000), ms(1000)), 3);
        assert_eq!(max_in_window(&arrivals, ms(1000), ms(2000)), 2);
    }

    #[test]
    fn message_paths_name_their_channel() {
        assert_eq!(
            channel_of("/v1.0/teams/t1/channels/19:x@thread.tacv2/messages/delta"),
            Some("19:x@thread.tacv2")
        );
        assert_eq!(channel_of("/v1.0/teams/t1"), None);
    }
}
