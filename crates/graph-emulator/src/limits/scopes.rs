//! The limiter's state: a token bucket per scope instance (the tenant, each team, channel
//! and user), the wait last decided for each, and how many requests each admitted. Pure
//! functions of the arrival times handed in, so the tests need no clock.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::{Limits, Routes};

/// The scopes a limit applies to, as named in the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    Tenant,
    Team,
    Channel,
    User,
}

impl ScopeKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ScopeKind::Tenant => "tenant",
            ScopeKind::Team => "team",
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

/// One scope instance: its bucket, the wait last decided for it, what it admitted.
#[derive(Debug, Clone, Default)]
struct Scope {
    bucket: Option<Bucket>,
    /// When the last 429 of this scope was decided, and until when it said to wait.
    decided_at: Option<Instant>,
    wait_until: Option<Instant>,
    /// That 429 carried no `Retry-After`: the wait was the bucket's refill, unsaid.
    unsaid: bool,
    /// Requests of this scope that were not answered 429.
    admitted: u64,
}

/// A request that arrives within this long after a 429 of its scope was decided (plus the
/// configured latency, which delays the 429 on its way) was already on the wire before the
/// client could read that 429: concurrent clients always have some in flight. It is
/// answered by the bucket like any other but not counted as a Retry-After violation. A
/// debug build on two busy cores takes tens of milliseconds from a 429's decision to the
/// client acting on it (25 ms flagged sends that left before the 429 was read).
pub(crate) const IN_FLIGHT: Duration = Duration::from_millis(50);

/// What a request is: its route (a name of `EmulatorStats::by_route`) and the ids it names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub route: &'a str,
    pub team: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub user: &'a str,
}

/// A 429: how long until every dry scope has a token, which scopes ran dry, and whether
/// the answer says so in `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rejection {
    pub wait: Duration,
    pub scopes: Vec<ScopeKind>,
    pub retry_after: bool,
}

/// What the limiter decided about one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// Scopes whose decided wait had not ended when the request arrived.
    pub violated: Vec<ScopeKind>,
    /// Some of those waits came from a 429 without `Retry-After` (the bucket's refill).
    pub violated_unsaid: bool,
    pub rejected: Option<Rejection>,
}

/// The buckets of every scope instance seen so far.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    limits: Limits,
    /// See [`IN_FLIGHT`]; includes the configured latency.
    pub(crate) in_flight: Duration,
    tenant: Scope,
    teams: HashMap<String, Scope>,
    channels: HashMap<String, Scope>,
    users: HashMap<String, Scope>,
    /// 429s answered, to spread the ones without `Retry-After` evenly.
    rejections: u64,
}

fn instance<'m>(map: &'m mut HashMap<String, Scope>, key: &str) -> &'m mut Scope {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), Scope::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// Whether the `n`-th 429 (from 1) goes without `Retry-After` when `share` of them do.
fn unsaid(n: u64, share: f64) -> bool {
    let share = share.clamp(0.0, 1.0);
    (n as f64 * share).floor() > ((n - 1) as f64 * share).floor()
}

impl Limiter {
    /// New limits start with full buckets and forget earlier decided waits.
    pub(crate) fn set(&mut self, limits: Limits) {
        *self = Limiter {
            limits,
            ..Limiter::default()
        };
    }

    pub(crate) fn active(&self) -> bool {
        !self.limits.is_unlimited()
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decides about a request that arrived at `now`, taking one token from every scope it
    /// counts under when all have one.
    pub(crate) fn admit(&mut self, now: Instant, t: &Target) -> Verdict {
        let l = &self.limits;
        let mut scopes: Vec<(ScopeKind, Option<f64>, Option<f64>, &mut Scope)> = Vec::new();
        if l.tenant_routes.covers(t.route) {
            scopes.push((
                ScopeKind::Tenant,
                l.tenant_rps,
                l.tenant_burst,
                &mut self.tenant,
            ));
        }
        if let Some(team) = t.team {
            let s = instance(&mut self.teams, team);
            scopes.push((ScopeKind::Team, l.team_rps, l.team_burst, s));
        }
        if let Some(ch) = t.channel.filter(|_| Routes::Messages.covers(t.route)) {
            let s = instance(&mut self.channels, ch);
            scopes.push((ScopeKind::Channel, l.channel_rps, l.channel_burst, s));
        }
        if l.user_routes.covers(t.route) {
            let s = instance(&mut self.users, t.user);
            scopes.push((ScopeKind::User, l.user_rps, l.user_burst, s));
        }
        let mut verdict = Verdict {
            violated: Vec::new(),
            violated_unsaid: false,
            rejected: None,
        };
        let mut dry = Vec::new();
        let mut longest = Duration::ZERO;
        for (kind, rate, burst, scope) in scopes.iter_mut() {
            let seen = scope
                .decided_at
                .is_some_and(|at| now >= at + self.in_flight);
            if seen && scope.wait_until.is_some_and(|until| now < until) {
                verdict.violated.push(*kind);
                verdict.violated_unsaid |= scope.unsaid;
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
                longest = longest.max(wait);
                dry.push((*kind, wait));
            }
        }
        if dry.is_empty() {
            for (_, _, _, scope) in scopes.iter_mut() {
                scope.admitted += 1;
                if let Some(b) = scope.bucket.as_mut() {
                    b.tokens -= 1.0;
                }
            }
            return verdict;
        }
        self.rejections += 1;
        let silent = unsaid(self.rejections, l.omit_retry_after);
        for (kind, _, _, scope) in scopes.iter_mut() {
            if let Some((_, wait)) = dry.iter().find(|(k, _)| k == kind) {
                scope.decided_at = Some(now);
                scope.wait_until = Some(now + *wait);
                scope.unsaid = silent;
            }
        }
        verdict.rejected = Some(Rejection {
            wait: longest,
            scopes: dry.into_iter().map(|(k, _)| k).collect(),
            retry_after: !silent,
        });
        verdict
    }

    /// Requests admitted by the busiest instance of each scope ("tenant", "team",
    /// "channel", "user"): what a benchmark divides by the scope's rate for its minimum.
    pub(crate) fn busiest(&self) -> BTreeMap<String, u64> {
        let max = |m: &HashMap<String, Scope>| m.values().map(|s| s.admitted).max().unwrap_or(0);
        BTreeMap::from([
            ("tenant".to_owned(), self.tenant.admitted),
            ("team".to_owned(), max(&self.teams)),
            ("channel".to_owned(), max(&self.channels)),
            ("user".to_owned(), max(&self.users)),
        ])
    }

    /// Starts the admitted counts over; buckets and decided waits stay as they are.
    pub(crate) fn reset_counts(&mut self) {
        self.tenant.admitted = 0;
        for m in [&mut self.teams, &mut self.channels, &mut self.users] {
            m.values_mut().for_each(|s| s.admitted = 0);
        }
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

#[cfg(test)]
mod tests;
