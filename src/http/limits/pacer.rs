//! One paced scope (the tenant's channel messages, the directory, one team): requests leave
//! in FIFO order at most `rate` a second (virtual scheduling, no burst), never inside the
//! scope's fence, and the rate follows what Graph accepts.
//!
//! Learning (issue 11): when a 429 is laid at this scope's door, the rate drops to a little
//! under what Graph *accepted* in the last few seconds — the binding limit, whatever it is
//! — instead of by a fixed factor that overshoots or undershoots. After a quiet hold the
//! rate creeps back up, so a limit that was lifted is found again.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Accepted answers are counted over this window to estimate the binding limit.
const WINDOW: Duration = Duration::from_secs(5);
/// After a cut, aim this far under what Graph accepted.
const UNDER: f64 = 0.97;
/// No probing upwards for this long after a cut.
const HOLD: Duration = Duration::from_secs(30);
/// Then one step up of `RAISE` every `STEP`.
const STEP: Duration = Duration::from_secs(2);
const RAISE: f64 = 1.03;
/// Below this share of 429s among the scope's recent answers the limit is not binding
/// (arrival jitter, a passing blip): the rate eases off by [`EASE`] instead of dropping to
/// what Graph accepted, which a half-idle scope would badly underestimate.
const BINDING: f64 = 0.1;
const EASE: f64 = 0.9;
/// Never below this: progress continues however tight the limit.
pub const FLOOR: f64 = 0.05;

#[derive(Debug)]
pub struct Pacer {
    /// Requests per second now.
    pub rate: f64,
    /// The configured rate (infinite for a team: teams have no configured limit).
    pub ceiling: f64,
    /// When the next request may leave.
    next: Instant,
    /// No request of this scope before this moment (a 429's `Retry-After`).
    pub fence: Instant,
    cut_at: Option<Instant>,
    raised_at: Instant,
    /// When recent requests of this scope were accepted (not 429), oldest first.
    accepted: VecDeque<Instant>,
    /// When recent requests of this scope were answered 429, oldest first.
    throttled: VecDeque<Instant>,
    first_answer: Option<Instant>,
}

impl Pacer {
    pub fn new(rate: f64, now: Instant) -> Self {
        Pacer {
            rate: rate.max(FLOOR),
            ceiling: rate.max(FLOOR),
            next: now,
            fence: now,
            cut_at: None,
            raised_at: now,
            accepted: VecDeque::new(),
            throttled: VecDeque::new(),
            first_answer: None,
        }
    }

    /// When this scope lets a request leave, without taking the slot.
    pub fn ready_at(&self, now: Instant) -> Instant {
        now.max(self.next).max(self.fence)
    }

    /// Takes the next slot: the request leaves at the returned moment (FIFO).
    pub fn reserve(&mut self, now: Instant) -> Instant {
        let at = self.ready_at(now);
        self.next = at + interval(self.rate);
        at
    }

    /// A pacer for a scope that was so far paced only by a wider one: it starts at `rate`
    /// with the answers the scope already had (`accepted` and `throttled`, oldest first,
    /// since `first`).
    pub fn with_history(
        rate: f64,
        now: Instant,
        accepted: VecDeque<Instant>,
        throttled: VecDeque<Instant>,
        first: Instant,
    ) -> Self {
        let mut p = Pacer::new(rate, now);
        p.accepted = accepted;
        p.throttled = throttled;
        p.first_answer = Some(first);
        p.prune(now);
        p
    }

    /// When the first answer of this scope came.
    pub fn first_answer(&self) -> Option<Instant> {
        self.first_answer
    }

    /// Raises the fence to `until` (never lowers it).
    pub fn fence_until(&mut self, until: Instant) {
        self.fence = self.fence.max(until);
        self.next = self.next.max(until);
    }

    /// Graph accepted a request of this scope; the rate may creep back up.
    pub fn accepted(&mut self, now: Instant) {
        self.first_answer.get_or_insert(now);
        self.accepted.push_back(now);
        self.prune(now);
        let held = self.cut_at.is_none_or(|c| now.duration_since(c) >= HOLD);
        if held && self.rate < self.ceiling && now.duration_since(self.raised_at) >= STEP {
            self.rate = (self.rate * RAISE).min(self.ceiling);
            self.raised_at = now;
        }
    }

    /// Counts a 429 of this scope (before [`Pacer::cut`] decides).
    pub fn answered_429(&mut self, now: Instant) {
        self.first_answer.get_or_insert(now);
        self.throttled.push_back(now);
        self.prune(now);
    }

    /// A 429 is laid at this scope's door: where 429s are a real share of the answers, aim
    /// under what Graph accepted lately; else ease off a little. Returns the new rate.
    pub fn cut(&mut self, now: Instant) -> f64 {
        self.prune(now);
        let (ok, no) = (self.accepted.len() as f64, self.throttled.len() as f64);
        let binding = no / (ok + no).max(1.0) >= BINDING;
        let measured = self.accepted_rate(now);
        self.rate = if binding {
            let base = measured.map_or(self.rate * 0.5, |m| m.min(self.rate));
            (base * UNDER).clamp(FLOOR, self.ceiling)
        } else {
            (self.rate * EASE).clamp(FLOOR, self.ceiling)
        };
        self.cut_at = Some(now);
        self.raised_at = now;
        self.rate
    }

    /// Requests per second Graph accepted over the last [`WINDOW`] (or since the first
    /// answer, if sooner, but never over less than a second); `None` without answers.
    fn accepted_rate(&self, now: Instant) -> Option<f64> {
        let first = self.first_answer?;
        if self.accepted.is_empty() {
            return None;
        }
        let span = now
            .duration_since(first)
            .min(WINDOW)
            .max(Duration::from_secs(1));
        Some(self.accepted.len() as f64 / span.as_secs_f64())
    }

    fn prune(&mut self, now: Instant) {
        for times in [&mut self.accepted, &mut self.throttled] {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
        }
    }

    /// Whether this scope was cut within `d` of `now`.
    pub fn cut_within(&self, now: Instant, d: Duration) -> bool {
        self.cut_at.is_some_and(|c| now.duration_since(c) <= d)
    }
}

pub fn interval(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate.max(FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_and_fifo() {
        let now = Instant::now();
        let mut p = Pacer::new(10.0, now);
        let a = p.reserve(now);
        let b = p.reserve(now);
        let c = p.reserve(now);
        assert_eq!(a, now);
        assert_eq!(b - a, Duration::from_millis(100));
        assert_eq!(c - b, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_aims_under_what_graph_accepted_and_creeps_back_after_the_hold() {
        let start = Instant::now();
        let mut p = Pacer::new(20.0, start);
        // Graph accepted 5 a second for 6 s while we sent 20.
        for i in 0..30 {
            tokio::time::advance(Duration::from_millis(200)).await;
            p.accepted(start + Duration::from_millis(200 * (i + 1)));
        }
        // 429s were most of what we sent.
        for _ in 0..20 {
            p.answered_429(Instant::now());
        }
        let rate = p.cut(Instant::now());
        assert!((rate - 5.0 * UNDER).abs() < 0.01, "{rate}");
        // Within the hold it stays; after it, it rises step by step to the ceiling.
        tokio::time::advance(Duration::from_secs(10)).await;
        p.accepted(Instant::now());
        assert_eq!(p.rate, rate);
        tokio::time::advance(HOLD).await;
        p.accepted(Instant::now());
        assert!(p.rate > rate && p.rate < rate * 1.1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rare_429_among_many_answers_only_eases_off() {
        let start = Instant::now();
        let mut p = Pacer::new(20.0, start);
        for i in 0..50 {
            p.accepted(start + Duration::from_millis(100 * i));
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        p.answered_429(Instant::now());
        assert_eq!(p.cut(Instant::now()), 20.0 * EASE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_without_answers_halves_and_never_goes_below_the_floor() {
        let now = Instant::now();
        let mut p = Pacer::new(1.0, now);
        p.answered_429(now);
        assert_eq!(p.cut(now), 0.5 * UNDER);
        for _ in 0..20 {
            p.cut(now);
        }
        assert_eq!(p.rate, FLOOR);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fence_holds_every_slot_back() {
        let now = Instant::now();
        let mut p = Pacer::new(10.0, now);
        p.fence_until(now + Duration::from_secs(2));
        assert_eq!(p.reserve(now), now + Duration::from_secs(2));
    }
}
