//! Rate limits enforced before sending (Graph throttling guidance), one budget per scope:
//! channel messages for the whole tenant, each channel, the directory, and the team
//! endpoints. A channel-message request passes its channel's bucket and the tenant's.
//!
//! The ceilings are `governor` buckets at the configured rates. Below them sits an
//! adaptive pacer per tenant-wide scope: when Graph answers 429 anyway, the scope is
//! fenced until `Retry-After` has passed (every task waits, instead of each bumping into
//! the wall) and its rate is cut; clean responses let it creep back up (AIMD). Graph does
//! not say which of its limits a 429 hit: a lone 429 on a channel fences that channel, a
//! second one from another channel soon after fences the tenant.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// `/users`.
    Directory,
    /// `/me/joinedTeams`, `/teams/{id}`, `/teams/{id}/channels`.
    Team,
    /// Messages, delta and replies of one channel.
    Channel(&'a str),
}

/// Cut to this fraction of the current rate on a lone 429, to `DECREASE_AGAIN` on one that
/// follows another within `AGAIN`: a single 429 at the ceiling is noise, repeated ones mean
/// the real limit is well below ours…
const DECREASE: f64 = 0.9;
const DECREASE_AGAIN: f64 = 0.5;
const AGAIN: Duration = Duration::from_secs(2);
/// …and add this fraction of the ceiling back after `CLEAN_STREAK` clean responses.
const INCREASE: f64 = 0.05;
const CLEAN_STREAK: u32 = 20;
/// Never below this fraction of the ceiling: progress continues while Graph recovers.
const FLOOR: f64 = 0.1;

/// We aim this far under each configured rate. Graph (and the emulator) count arrivals,
/// not departures: a request that leaves on time can still arrive a millisecond early after
/// a slow predecessor, and with a one-token channel bucket that is a 429. The tenant keeps
/// a thin margin; the channel, rarely the binding limit, a wide one.
const TENANT_MARGIN: f64 = 0.98;
const CHANNEL_MARGIN: f64 = 0.9;

fn quota(per_second: f64) -> Quota {
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    // A burst of one second's worth keeps us inside Graph's short-window enforcement.
    let burst = NonZeroU32::new(per_second.floor().max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// A tenant-wide budget: a governor ceiling plus the adaptive pacer and the fence.
struct Budget {
    name: &'static str,
    ceiling: DefaultDirectRateLimiter,
    max_rps: f64,
    pacer: Mutex<Pacer>,
}

struct Pacer {
    rps: f64,
    clean: u32,
    /// Next moment a request may leave while the rate is reduced (GCRA without burst).
    next: Instant,
    /// No request of this scope before this moment (the longest `Retry-After` seen).
    fence: Instant,
    /// When the last 429 came.
    last_throttle: Option<Instant>,
}

impl Budget {
    fn new(name: &'static str, rps: f64) -> Self {
        let now = Instant::now();
        Budget {
            name,
            ceiling: RateLimiter::direct(quota(rps)),
            max_rps: rps,
            pacer: Mutex::new(Pacer {
                rps,
                clean: 0,
                next: now,
                fence: now,
                last_throttle: None,
            }),
        }
    }

    /// When this request may leave, as far as the pacer and the fence are concerned.
    fn slot(&self) -> Instant {
        let now = Instant::now();
        let Ok(mut p) = self.pacer.lock() else {
            return now;
        };
        let mut at = now.max(p.fence);
        if p.rps < self.max_rps {
            at = at.max(p.next);
            p.next = at + Duration::from_secs_f64(1.0 / p.rps);
        }
        at
    }

    /// The fence, for a task that waited for its slot and must not leave inside a fence
    /// that went up meanwhile.
    fn fence(&self) -> Instant {
        self.pacer
            .lock()
            .map(|p| p.fence)
            .unwrap_or_else(|_| Instant::now())
    }

    fn throttled(&self, retry_after: Duration) {
        let Ok(mut p) = self.pacer.lock() else { return };
        let now = Instant::now();
        let until = now + retry_after;
        p.fence = p.fence.max(until);
        p.next = p.next.max(until);
        p.clean = 0;
        let again = p
            .last_throttle
            .is_some_and(|t| now.duration_since(t) < AGAIN + retry_after);
        p.last_throttle = Some(now);
        let factor = if again { DECREASE_AGAIN } else { DECREASE };
        let cut = (p.rps * factor).max(self.max_rps * FLOOR);
        if cut < p.rps {
            p.rps = cut;
            tracing::warn!(
                scope = self.name,
                requests_per_second = format!("{cut:.1}"),
                retry_after_ms = retry_after.as_millis() as u64,
                "Graph throttled us; slowing down. Lower [limits] requests_per_second if this repeats."
            );
        }
    }

    fn succeeded(&self) {
        let Ok(mut p) = self.pacer.lock() else { return };
        if p.rps >= self.max_rps {
            return;
        }
        p.clean += 1;
        if p.clean >= CLEAN_STREAK {
            p.clean = 0;
            p.rps = (p.rps + self.max_rps * INCREASE).min(self.max_rps);
            tracing::debug!(
                scope = self.name,
                requests_per_second = format!("{:.1}", p.rps),
                "Graph is clean again; speeding up."
            );
        }
    }
}

pub struct Limiter {
    messages: Budget,
    directory: Budget,
    team: Budget,
    channel: DefaultKeyedRateLimiter<String>,
    /// Channels fenced by a 429 of their own, and the last channel 429 (which channel,
    /// when): a second one from another channel soon after means the tenant is the limit.
    /// A std `Mutex`: held for a lookup or an insert, never across an await.
    channel_fences: Mutex<ChannelFences>,
}

#[derive(Default)]
struct ChannelFences {
    until: std::collections::HashMap<String, Instant>,
    last: Option<(String, Instant)>,
}

/// Two 429s from different channels within this long are the tenant's limit, not theirs.
const TENANT_SIGNAL: Duration = Duration::from_secs(1);

impl Limiter {
    pub fn new(tenant_rps: f64, channel_rps: f64) -> Self {
        let tenant_rps = tenant_rps * TENANT_MARGIN;
        Limiter {
            messages: Budget::new("messages", tenant_rps),
            // The directory and team endpoints have budgets of their own at Graph; ours
            // keep them from eating into the channel-message budget.
            directory: Budget::new("directory", tenant_rps),
            team: Budget::new("teams", tenant_rps),
            channel: RateLimiter::keyed(quota(channel_rps * CHANNEL_MARGIN)),
            channel_fences: Mutex::new(ChannelFences::default()),
        }
    }

    fn channel_fence(&self, key: &str) -> Option<Instant> {
        let fences = self.channel_fences.lock().ok()?;
        fences
            .until
            .get(key)
            .copied()
            .filter(|t| *t > Instant::now())
    }

    fn budget(&self, scope: Scope) -> &Budget {
        match scope {
            Scope::Directory => &self.directory,
            Scope::Team => &self.team,
            Scope::Channel(_) => &self.messages,
        }
    }

    /// Waits until `scope` may send: fence and pacer first, then the governor ceilings.
    /// Not cancel-aware by itself; callers race it against shutdown.
    pub async fn acquire(&self, scope: Scope<'_>) {
        let budget = self.budget(scope);
        let at = budget.slot();
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        // A 429 elsewhere may have raised the fence while this task slept.
        loop {
            let fence = budget.fence();
            if fence <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(fence.into()).await;
        }
        if let Scope::Channel(key) = scope {
            while let Some(fence) = self.channel_fence(key) {
                tokio::time::sleep_until(fence.into()).await;
            }
            self.channel.until_key_ready(&key.to_string()).await;
        }
        budget.ceiling.until_ready().await;
    }

    /// Graph answered 429 for `scope`. Graph does not say which of its limits that was: a
    /// lone 429 on a channel fences only that channel; a second one from another channel
    /// soon after fences the whole tenant and cuts its rate, as does a 429 anywhere else.
    pub fn throttled(&self, scope: Scope<'_>, retry_after: Duration) {
        let Scope::Channel(key) = scope else {
            return self.budget(scope).throttled(retry_after);
        };
        let now = Instant::now();
        let tenant_wide = {
            let Ok(mut f) = self.channel_fences.lock() else {
                return;
            };
            f.until.retain(|_, t| *t > now);
            f.until.insert(key.to_string(), now + retry_after);
            let other_recent = f
                .last
                .as_ref()
                .is_some_and(|(k, t)| k != key && now.duration_since(*t) < TENANT_SIGNAL);
            f.last = Some((key.to_string(), now));
            other_recent
        };
        if tenant_wide {
            self.messages.throttled(retry_after);
        }
    }

    pub fn succeeded(&self, scope: Scope<'_>) {
        self.budget(scope).succeeded();
    }

    /// The current rate of the channel-message scope (for the run summary).
    pub fn message_rate(&self) -> f64 {
        self.messages
            .pacer
            .lock()
            .map(|p| p.rps)
            .unwrap_or(self.messages.max_rps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_fences_the_scope_and_cuts_the_rate_then_it_recovers() {
        let b = Budget::new("t", 10.0);
        b.throttled(Duration::from_millis(1500));
        let at = b.slot();
        assert!(
            at >= Instant::now() + Duration::from_millis(1400),
            "fenced for the Retry-After"
        );
        let rps = b.pacer.lock().unwrap().rps;
        assert!((rps - 9.0).abs() < 1e-9, "a lone 429 cuts a tenth: {rps}");
        b.throttled(Duration::ZERO);
        let rps = b.pacer.lock().unwrap().rps;
        assert!(
            (rps - 4.5).abs() < 1e-9,
            "a second one soon after halves: {rps}"
        );
        // From 4.5 back to 10 takes eleven steps of 0.5.
        for _ in 0..(CLEAN_STREAK * 11) {
            b.succeeded();
        }
        assert_eq!(b.pacer.lock().unwrap().rps, 10.0);
    }

    #[test]
    fn the_rate_never_drops_below_the_floor() {
        let b = Budget::new("t", 10.0);
        for _ in 0..100 {
            b.throttled(Duration::ZERO);
        }
        assert!((b.pacer.lock().unwrap().rps - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_reduced_rate_spaces_requests() {
        let b = Budget::new("t", 10.0);
        b.throttled(Duration::ZERO);
        let first = b.slot();
        let second = b.slot();
        assert!(
            second.duration_since(first) >= Duration::from_millis(110),
            "1/9 s apart"
        );
    }

    #[test]
    fn a_lone_channel_429_fences_that_channel_only() {
        let l = Limiter::new(10.0, 1.0);
        l.throttled(Scope::Channel("a"), Duration::from_secs(1));
        assert!(l.channel_fence("a").is_some());
        assert!(l.channel_fence("b").is_none());
        assert_eq!(
            l.message_rate(),
            10.0 * TENANT_MARGIN,
            "the tenant rate is untouched"
        );
        // A second channel soon after: the tenant is the limit.
        l.throttled(Scope::Channel("b"), Duration::from_secs(1));
        assert!(l.messages.fence() > Instant::now(), "the tenant is fenced");
        assert!(l.message_rate() < 10.0 * TENANT_MARGIN);
    }
}
