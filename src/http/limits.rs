//! Rate limits enforced before sending (Graph throttling guidance), one budget per scope:
//! channel messages for the whole tenant, each channel, the directory, and the team
//! endpoints. A channel-message request passes its channel's bucket and the tenant's.
//!
//! The ceilings are `governor` buckets a little under the configured rates. Below them
//! sits an adaptive pacer per tenant-wide scope (AIMD): it judges Graph's answers in
//! windows of [`WINDOW`] — a window with several 429s cuts the rate, a clean one gives
//! some back — because a lone 429 at the ceiling is arrival jitter, not a lower limit.
//!
//! Every 429 fences what it may have meant: Graph does not say which of its limits a 429
//! hit. The channel waits its whole `Retry-After`. The tenant waits too, but no longer
//! than two of its own token intervals (all a tenant bucket needs to have a token again),
//! unless 429s from several channels arrive together, which is the tenant's limit: then
//! the tenant waits the whole `Retry-After`.

use std::collections::HashMap;
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

/// Answers judged together; with at least `WINDOW_429S` 429s among them the rate is cut
/// to `DECREASE` of itself, with none `INCREASE` of the ceiling is given back.
const WINDOW: u32 = 50;
const WINDOW_429S: u32 = 2;
const DECREASE: f64 = 0.7;
const INCREASE: f64 = 0.1;
/// Never below this fraction of the ceiling: progress continues while Graph recovers.
const FLOOR: f64 = 0.1;
/// 429s from different channels this close together are the tenant's limit.
const TENANT_SIGNAL: Duration = Duration::from_secs(1);

/// We aim this far under each configured rate. Graph (and the emulator) count arrivals,
/// not departures: a request that leaves on time can still arrive a little early behind a
/// slow predecessor, and with a one-token channel bucket that is a 429. The tenant keeps a
/// thin margin; the channel, rarely the binding limit, a wide one.
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
    /// A std `Mutex`: held for a few arithmetic steps, never across an await.
    pacer: Mutex<Pacer>,
}

struct Pacer {
    rps: f64,
    /// Answers and 429s in the current window.
    answers: u32,
    throttled: u32,
    /// Next moment a request may leave while the rate is reduced (GCRA without burst).
    next: Instant,
    /// No request of this scope before this moment.
    fence: Instant,
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
                answers: 0,
                throttled: 0,
                next: now,
                fence: now,
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

    fn raise_fence(&self, wait: Duration) {
        if let Ok(mut p) = self.pacer.lock() {
            let until = Instant::now() + wait;
            p.fence = p.fence.max(until);
            p.next = p.next.max(until);
        }
    }

    /// The longest a tenant bucket can need for one token: two of our token intervals.
    fn token_interval(&self) -> Duration {
        Duration::from_secs_f64(2.0 / self.max_rps.max(0.001))
    }

    /// Counts one answer of this scope and, at the end of a window, adapts the rate.
    fn answered(&self, throttled: bool) {
        let Ok(mut p) = self.pacer.lock() else { return };
        p.answers += 1;
        p.throttled += u32::from(throttled);
        if p.answers < WINDOW && p.throttled < WINDOW_429S {
            return;
        }
        let before = p.rps;
        if p.throttled >= WINDOW_429S {
            p.rps = (p.rps * DECREASE).max(self.max_rps * FLOOR);
        } else if p.throttled == 0 {
            p.rps = (p.rps + self.max_rps * INCREASE).min(self.max_rps);
        }
        p.answers = 0;
        p.throttled = 0;
        if p.rps < before {
            tracing::warn!(
                scope = self.name,
                requests_per_second = format!("{:.1}", p.rps),
                "Graph keeps throttling us; slowing down. Lower [limits] requests_per_second if this repeats."
            );
        } else if p.rps > before {
            tracing::debug!(
                scope = self.name,
                requests_per_second = format!("{:.1}", p.rps),
                "Graph is clean again; speeding up."
            );
        }
    }
}

#[derive(Default)]
struct ChannelFences {
    until: HashMap<String, Instant>,
    /// When each channel's last request left. A channel has one request in flight at a
    /// time, and the tenant bucket may hold a request back after the channel bucket let it
    /// go: spacing is measured from the real departure, or the next request of the
    /// channel could leave less than a channel interval after it.
    sent: HashMap<String, Instant>,
    /// The last channel 429: which channel, when.
    last: Option<(String, Instant)>,
}

pub struct Limiter {
    messages: Budget,
    directory: Budget,
    team: Budget,
    channel: DefaultKeyedRateLimiter<String>,
    channel_interval: Duration,
    /// Channels fenced by a 429. A std `Mutex`: held for a lookup or an insert.
    channel_fences: Mutex<ChannelFences>,
}

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
            channel_interval: Duration::from_secs_f64(
                1.0 / (channel_rps * CHANNEL_MARGIN).max(0.001),
            ),
            channel_fences: Mutex::new(ChannelFences::default()),
        }
    }

    fn budget(&self, scope: Scope) -> &Budget {
        match scope {
            Scope::Directory => &self.directory,
            Scope::Team => &self.team,
            Scope::Channel(_) => &self.messages,
        }
    }

    /// The earliest a request of channel `key` may leave: after its 429 fence and one
    /// channel interval after its last request left.
    fn channel_fence(&self, key: &str) -> Option<Instant> {
        let fences = self.channel_fences.lock().ok()?;
        let fence = fences.until.get(key).copied();
        let spaced = fences.sent.get(key).map(|t| *t + self.channel_interval);
        fence.max(spaced).filter(|t| *t > Instant::now())
    }

    fn channel_sent(&self, key: &str) {
        if let Ok(mut f) = self.channel_fences.lock() {
            let now = Instant::now();
            f.sent
                .retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
            f.sent.insert(key.to_string(), now);
        }
    }

    /// Waits until `scope` may send: fences and pacer first, then the governor ceilings.
    /// Not cancel-aware by itself; callers race it against shutdown.
    pub async fn acquire(&self, scope: Scope<'_>) {
        let budget = self.budget(scope);
        let at = budget.slot();
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        // A 429 elsewhere may have raised a fence while this task slept.
        loop {
            let tenant = budget.fence();
            let fence = match scope {
                Scope::Channel(key) => self.channel_fence(key).map_or(tenant, |c| c.max(tenant)),
                _ => tenant,
            };
            if fence <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(fence.into()).await;
        }
        if let Scope::Channel(key) = scope {
            self.channel.until_key_ready(&key.to_string()).await;
        }
        budget.ceiling.until_ready().await;
        if let Scope::Channel(key) = scope {
            self.channel_sent(key);
        }
    }

    /// Graph answered 429 for `scope` with `retry_after`; returns how long the request
    /// waits before it goes again (a 429 without `Retry-After` waits one second).
    pub fn throttled(&self, scope: Scope<'_>, retry_after: Option<Duration>) -> Duration {
        let retry_after = retry_after.unwrap_or(Duration::from_secs(1));
        let budget = self.budget(scope);
        let Scope::Channel(key) = scope else {
            budget.answered(true);
            budget.raise_fence(retry_after);
            return retry_after;
        };
        let now = Instant::now();
        let several = {
            let Ok(mut f) = self.channel_fences.lock() else {
                return retry_after;
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
        // Only 429s that point at the tenant count against the tenant's rate: a channel's
        // own 429 says nothing about it.
        budget.answered(several);
        let tenant_wait = if several {
            retry_after
        } else {
            retry_after.min(budget.token_interval())
        };
        budget.raise_fence(tenant_wait);
        retry_after
    }

    pub fn succeeded(&self, scope: Scope<'_>) {
        self.budget(scope).answered(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_429_is_noise_repeated_ones_cut_the_rate_and_clean_windows_restore_it() {
        let b = Budget::new("t", 10.0);
        b.answered(true);
        assert_eq!(b.pacer.lock().unwrap().rps, 10.0, "one 429 changes nothing");
        b.answered(true);
        let rps = b.pacer.lock().unwrap().rps;
        assert!(
            (rps - 7.0).abs() < 1e-9,
            "two in a window cut by 30 %: {rps}"
        );
        for _ in 0..(WINDOW * 3) {
            b.answered(false);
        }
        assert_eq!(
            b.pacer.lock().unwrap().rps,
            10.0,
            "three clean windows give it back"
        );
    }

    #[test]
    fn the_rate_never_drops_below_the_floor() {
        let b = Budget::new("t", 10.0);
        for _ in 0..100 {
            b.answered(true);
        }
        assert!((b.pacer.lock().unwrap().rps - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_reduced_rate_spaces_requests() {
        let b = Budget::new("t", 10.0);
        b.answered(true);
        b.answered(true);
        let first = b.slot();
        let second = b.slot();
        assert!(
            second.duration_since(first) >= Duration::from_millis(140),
            "1/7 s apart"
        );
    }

    #[test]
    fn a_channel_429_fences_the_channel_fully_and_the_tenant_briefly() {
        let l = Limiter::new(10.0, 1.0);
        l.throttled(Scope::Channel("a"), Some(Duration::from_secs(1)));
        let now = Instant::now();
        assert!(l
            .channel_fence("a")
            .is_some_and(|t| t > now + Duration::from_millis(900)));
        assert!(l.channel_fence("b").is_none());
        let tenant = l.messages.fence();
        assert!(
            tenant > now && tenant <= now + Duration::from_millis(250),
            "two token intervals at most"
        );
        // A second channel soon after: the tenant is the limit and waits it all out.
        l.throttled(Scope::Channel("b"), Some(Duration::from_secs(1)));
        assert!(l.messages.fence() > Instant::now() + Duration::from_millis(900));
    }

    #[test]
    fn other_scopes_wait_their_whole_retry_after() {
        let l = Limiter::new(10.0, 1.0);
        l.throttled(Scope::Directory, Some(Duration::from_millis(1500)));
        assert!(l.directory.fence() > Instant::now() + Duration::from_millis(1400));
        assert!(
            l.messages.fence() <= Instant::now(),
            "channel messages are not held up"
        );
    }

    #[test]
    fn channel_spacing_counts_from_the_real_departure() {
        let l = Limiter::new(10.0, 1.0);
        // The request left (after any tenant wait): the next one waits a channel interval
        // from now, not from when the channel bucket let the previous one go.
        l.channel_sent("a");
        let next = l.channel_fence("a").expect("spaced");
        assert!(
            next >= Instant::now() + Duration::from_millis(1000),
            "1/0.9 s after leaving"
        );
        assert!(l.channel_fence("b").is_none());
    }
}
