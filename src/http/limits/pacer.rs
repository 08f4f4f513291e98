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
/// No probing upwards for this long after a cut ...
const HOLD: Duration = Duration::from_secs(30);
/// ... twice as long each time probing found the same limit again, up to this: a limit
/// that holds costs a 429 less and less often, one that was lifted is found within minutes.
const MAX_HOLD: Duration = Duration::from_secs(300);
/// Then one step up of `RAISE` every `STEP`.
const STEP: Duration = Duration::from_secs(2);
const RAISE: f64 = 1.03;
/// Below this share of 429s among the scope's recent answers the limit is not binding
/// (arrival jitter, a passing blip): the rate eases off by [`EASE`] instead of dropping to
/// what Graph accepted, which a half-idle scope would badly underestimate.
const BINDING: f64 = 0.1;
const EASE: f64 = 0.9;
/// Once a limit was found, one cut takes at most this share off.
const NEAR: f64 = 0.8;
/// A rate that ran this long without a 429 is one to come back to.
const CLEAN: Duration = Duration::from_secs(5);
/// How late a wake-up may come (timers have millisecond ticks) and still be on time.
const TIMER_SLACK: Duration = Duration::from_millis(2);
/// A limit's burst is taken to be a second's worth (at least one request): a fence
/// refills it for at least this long.
const REFILL: Duration = Duration::from_secs(1);
/// Fences over this share of the window are mostly refill ([`Pacer::accepted_rate`]) ...
const MOSTLY_FENCED: f64 = 0.67;
/// ... given at least this many answers accepted in it.
const REFILL_EVIDENCE: usize = 3;
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
    /// How long the last cut holds the rate ([`HOLD`] to [`MAX_HOLD`]).
    hold: Duration,
    /// What Graph accepted of this scope when a binding 429 last cut its rate.
    learned: Option<f64>,
    /// Since when no request of this scope met a 429.
    clean_since: Instant,
    /// The rate the scope last ran at for [`CLEAN`] without a 429.
    good: Option<f64>,
    raised_at: Instant,
    /// When recent requests of this scope were accepted (not 429), oldest first.
    accepted: VecDeque<Instant>,
    /// When recent requests of this scope were answered 429, oldest first.
    throttled: VecDeque<Instant>,
    /// Recent fences (from, until), oldest first, merged where they overlap: time in
    /// which nothing could be accepted does not count against what Graph accepts.
    fenced: VecDeque<(Instant, Instant)>,
    /// Recent stretches (from, until) in which a slot was free and nobody took it.
    idle: VecDeque<(Instant, Instant)>,
    first_answer: Option<Instant>,
    /// A team's pacer: its fences are the tenant's ([`Pacer::narrower`]).
    shares_fences: bool,
}

impl Pacer {
    pub fn new(rate: f64, now: Instant) -> Self {
        Pacer {
            rate: rate.max(FLOOR),
            ceiling: rate.max(FLOOR),
            next: now,
            fence: now,
            cut_at: None,
            hold: HOLD,
            learned: None,
            clean_since: now,
            good: None,
            raised_at: now,
            accepted: VecDeque::new(),
            throttled: VecDeque::new(),
            fenced: VecDeque::new(),
            idle: VecDeque::new(),
            first_answer: None,
            shares_fences: false,
        }
    }

    /// When this scope lets a request leave, without taking the slot.
    pub fn ready_at(&self, now: Instant) -> Instant {
        now.max(self.next).max(self.fence)
    }

    /// The scope's next slot, past or not.
    pub fn next_slot(&self) -> Instant {
        self.next.max(self.fence)
    }

    /// A request leaves at `now`: the next one may leave one interval later (or after a
    /// turn given beyond that).
    pub fn take(&mut self, now: Instant) {
        let free = self.next.max(self.fence);
        // A request woken a timer tick after its slot took that slot: no drift.
        if now >= free && now - free <= TIMER_SLACK {
            self.next = self.next.max(free + interval(self.rate));
            return;
        }
        if now > free {
            self.idle.push_back((free, now));
            while self
                .idle
                .front()
                .is_some_and(|(_, until)| now.saturating_duration_since(*until) >= WINDOW)
            {
                self.idle.pop_front();
            }
        }
        self.next = self.next.max(now + interval(self.rate));
    }

    /// The share of the last `over` in which this scope could have sent and did not (up
    /// to [`WINDOW`]).
    pub fn idle_share(&self, now: Instant, over: Duration) -> f64 {
        let over = over.min(WINDOW);
        let from = now - over;
        let within = |a: Instant, b: Instant| b.min(now).saturating_duration_since(a.max(from));
        let past: Duration = self.idle.iter().map(|(a, b)| within(*a, *b)).sum();
        let ongoing = within(self.next.max(self.fence), now);
        (past + ongoing).as_secs_f64() / over.as_secs_f64().max(f64::EPSILON)
    }

    /// A pacer for a narrower scope that so far was paced only by this one (a team within
    /// the tenant): it has the answers that scope already had (`accepted` and `throttled`,
    /// oldest first) and this one's fences, and starts at the rate the scope was sent at
    /// (at most this one's): what a wider limit left it, not what it could take.
    pub fn narrower(
        &self,
        now: Instant,
        accepted: VecDeque<Instant>,
        throttled: VecDeque<Instant>,
    ) -> Self {
        let mut p = Pacer::new(self.rate, now);
        p.shares_fences = true;
        p.accepted = accepted;
        p.throttled = throttled;
        p.fenced = self.fenced.clone();
        // Counted from the scope's own first answer: a team whose channels started late
        // had less time to be accepted in than the tenant.
        let own_first = [p.accepted.front(), p.throttled.front()]
            .into_iter()
            .flatten()
            .min()
            .copied();
        p.first_answer = Some(own_first.or(self.first_answer).unwrap_or(now));
        p.prune(now);
        let sent = (p.accepted.len() + p.throttled.len()) as f64;
        p.rate = (sent / p.open_secs(now)).clamp(FLOOR, self.rate);
        p
    }

    /// Raises the fence to `until` (never lowers it): a `Retry-After`, time in which Graph
    /// accepts nothing of this scope.
    pub fn fence_until(&mut self, until: Instant) {
        let now = Instant::now();
        if until > now {
            match self.fenced.back_mut() {
                Some((_, end)) if *end >= now => *end = (*end).max(until),
                _ => self.fenced.push_back((now, until)),
            }
        }
        self.fence = self.fence.max(until);
        self.next = self.next.max(until);
    }

    /// Fences `until` after a 429: [`Pacer::fence_until`] when Graph said `Retry-After`.
    /// Without one the wait is ours, not Graph's: it holds every request back the same,
    /// but is no time in which Graph would have accepted nothing.
    pub fn fence_after_429(&mut self, until: Instant, said: bool) {
        if said {
            self.fence_until(until);
        } else {
            self.fence = self.fence.max(until);
            self.next = self.next.max(until);
        }
    }

    /// Holds every request of this scope back until `until`, which is no `Retry-After`
    /// (a throttled request's turn is in it): neither fenced time nor a fence.
    pub fn hold_until(&mut self, until: Instant) {
        self.next = self.next.max(until);
    }

    /// Graph accepted a request of this scope; the rate may creep back up.
    pub fn accepted(&mut self, now: Instant) {
        self.first_answer.get_or_insert(now);
        self.accepted.push_back(now);
        self.prune(now);
        let held = self
            .cut_at
            .is_none_or(|c| now.duration_since(c) >= self.hold);
        if held && self.rate < self.ceiling && now.duration_since(self.raised_at) >= STEP {
            if now.duration_since(self.clean_since) >= CLEAN {
                // The rate it leaves ran clean: one to come back to.
                self.good = Some(self.rate);
            }
            self.rate = (self.rate * RAISE).min(self.ceiling);
            self.raised_at = now;
        }
    }

    /// Counts a 429 of this scope (before [`Pacer::cut`] decides).
    pub fn answered_429(&mut self, now: Instant) {
        self.first_answer.get_or_insert(now);
        self.clean_since = now;
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
            match self.good.take() {
                // Crept past a rate that ran clean: back under it. Just over a limit Graph
                // accepts far less than the limit (each 429 costs a wait), so what it
                // accepted then is no measure of it.
                Some(good) if self.rate > good * UNDER => {
                    // What Graph accepted is what was learned, not the rate that ran clean:
                    // a limit's burst lets a rate a fifth over it run clean for seconds.
                    self.learned = Some(measured.map_or(good, |m| m.min(good)));
                    self.hold = (self.hold * 2).min(MAX_HOLD);
                    (good * UNDER).clamp(FLOOR, self.ceiling)
                }
                _ => {
                    self.hold = HOLD;
                    let mut base = measured.map_or(self.rate * 0.5, |m| m.min(self.rate));
                    if self.learned.is_some() {
                        // Near a limit found before, a cut is a step, not a fall.
                        base = base.max(self.rate * NEAR);
                    }
                    self.learned = measured;
                    (base * UNDER).clamp(FLOOR, self.ceiling)
                }
            }
        } else {
            (self.rate * EASE).clamp(FLOOR, self.ceiling)
        };
        self.cut_at = Some(now);
        self.raised_at = now;
        self.rate
    }

    /// Requests per second Graph accepted over the last [`WINDOW`] (or since the first
    /// answer, if sooner), never over less than a second; `None` without answers.
    ///
    /// A fence (a `Retry-After`) is time in which Graph would accept nothing of this scope:
    /// left out of the measure while fences are a minor part of the window, so that a long
    /// `Retry-After` does not make the limit look narrower than it is. Where fences fill
    /// most of it, Graph answers nearly every other request with the wait until its limit
    /// refills — a 1/s limit says "0.93 s" — and leaving those waits out would make it look
    /// five times wider: then a fence counts as time Graph accepted in, up to what its
    /// limit refills in ([`REFILL`], or one interval of the rate when that is longer), and
    /// the estimate is the largest rate the answers allow (for a limit slower than 1/s
    /// that may be up to twice the limit: the cuts after it find the rest). Not so with
    /// fewer than [`REFILL_EVIDENCE`] answers accepted (one long `Retry-After` and a
    /// request or two after it say nothing of a refill), nor for a team's pacer, whose
    /// fences are mostly the tenant's: other teams' waits, in which its own limit was not
    /// being asked.
    fn accepted_rate(&self, now: Instant) -> Option<f64> {
        if self.accepted.is_empty() {
            return None;
        }
        let ok = self.accepted.len() as f64;
        let fences = self.fences_within(now);
        let (span, _) = self.span(now);
        let fenced: Duration = fences.iter().sum();
        let refills = !self.shares_fences
            && self.accepted.len() >= REFILL_EVIDENCE
            && fenced.as_secs_f64() >= span.as_secs_f64() * MOSTLY_FENCED;
        if !refills {
            return Some(ok / open_secs(span, fenced));
        }
        let rate_if = |rate: f64| {
            let refill = interval(rate).max(REFILL);
            let out: Duration = fences.iter().map(|f| f.saturating_sub(refill)).sum();
            ok / span
                .saturating_sub(out)
                .max(Duration::from_secs(1))
                .as_secs_f64()
        };
        // The estimate grows with the rate it assumes (a slower limit refills longer): from
        // the estimate at a second of refill per fence (any rate of 1/s or more), step down
        // to the largest fixed point, which only a limit slower than 1/s takes steps to.
        let mut rate = rate_if(f64::INFINITY);
        for _ in 0..256 {
            let next = rate_if(rate);
            if next >= rate * 0.999 {
                break;
            }
            rate = next;
        }
        Some(rate)
    }

    /// The time measured over: the last [`WINDOW`] or since the first answer, if sooner;
    /// and where it starts.
    fn span(&self, now: Instant) -> (Duration, Instant) {
        let first = self.first_answer.unwrap_or(now);
        let span = now.duration_since(first).min(WINDOW);
        (span, now - span)
    }

    /// The fences' lengths within [`Pacer::span`].
    fn fences_within(&self, now: Instant) -> Vec<Duration> {
        let (_, from) = self.span(now);
        self.fenced
            .iter()
            .map(|(a, b)| (*b).min(now).saturating_duration_since((*a).max(from)))
            .filter(|d| !d.is_zero())
            .collect()
    }

    /// Seconds of [`Pacer::span`] in which no fence held this scope, never less than one.
    fn open_secs(&self, now: Instant) -> f64 {
        let (span, _) = self.span(now);
        open_secs(span, self.fences_within(now).iter().sum())
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
        while self
            .fenced
            .front()
            .is_some_and(|(_, until)| now.saturating_duration_since(*until) >= WINDOW)
        {
            self.fenced.pop_front();
        }
    }

    /// The share of 429s among this scope's answers over the last [`WINDOW`].
    pub fn throttled_share(&self, now: Instant) -> f64 {
        let recent = |times: &VecDeque<Instant>| {
            times
                .iter()
                .filter(|t| now.duration_since(**t) < WINDOW)
                .count() as f64
        };
        let (ok, no) = (recent(&self.accepted), recent(&self.throttled));
        no / (ok + no).max(1.0)
    }

    /// The last cut was a guess shown wrong: the rate may creep back up from now on.
    pub fn release(&mut self) {
        self.cut_at = None;
    }

    /// Whether this scope is paced under what Graph accepted of it when it was last cut:
    /// a 429 now cannot be this scope's own limit.
    pub fn under_learned_limit(&self) -> bool {
        self.learned.is_some_and(|l| self.rate < l * 0.995)
    }

    /// Whether this scope learned a limit and is paced at it or over it (probing up, or
    /// back at a rate that ran clean): a 429 now is most likely its own.
    pub fn at_learned_limit(&self) -> bool {
        self.learned.is_some_and(|l| self.rate >= l * 0.995)
    }

    /// Whether this scope was cut within `d` of `now`.
    pub fn cut_within(&self, now: Instant, d: Duration) -> bool {
        self.cut_at.is_some_and(|c| now.duration_since(c) <= d)
    }
}

/// Seconds of `span` not `fenced`, never less than one.
fn open_secs(span: Duration, fenced: Duration) -> f64 {
    span.saturating_sub(fenced)
        .max(Duration::from_secs(1))
        .as_secs_f64()
}

pub fn interval(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate.max(FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slot_taken_spaces_the_next_one() {
        let now = Instant::now();
        let mut p = Pacer::new(10.0, now);
        assert_eq!(p.ready_at(now), now);
        p.take(now);
        assert_eq!(p.ready_at(now), now + Duration::from_millis(100));
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

    /// A probe past a rate that ran clean meets the limit again: the next probe waits
    /// twice as long, up to [`MAX_HOLD`].
    #[tokio::test(start_paused = true)]
    async fn each_probe_that_finds_the_same_limit_waits_longer_for_the_next() {
        let mut p = Pacer::new(20.0, Instant::now());
        // Learned: what Graph accepted, about 1 a second.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            p.accepted(Instant::now());
            p.answered_429(Instant::now());
        }
        let learned = p.cut(Instant::now());
        assert!(learned < 1.5, "{learned}");
        let mut holds = Vec::new();
        let mut after_cut = learned;
        for _ in 0..6 {
            // Clean until the hold ends and probing lifts the rate past the limit.
            let cut = Instant::now();
            while p.rate <= after_cut * 1.05 {
                tokio::time::advance(Duration::from_secs(1)).await;
                p.accepted(Instant::now());
            }
            holds.push(Instant::now().duration_since(cut).as_secs());
            // The limit answers: 429s are most of the last seconds' answers.
            for _ in 0..10 {
                p.answered_429(Instant::now());
            }
            after_cut = p.cut(Instant::now());
            // Back under the rate that last ran clean: near the limit, not a fall.
            assert!(
                (after_cut / learned - 1.0).abs() < 0.1,
                "{after_cut} vs {learned}"
            );
        }
        assert_eq!(holds, [32, 62, 122, 242, 302, 302]);
    }

    /// Graph accepts a request every 200 ms for `secs` seconds.
    async fn accept_for(p: &mut Pacer, secs: u32) {
        for _ in 0..secs * 5 {
            tokio::time::advance(Duration::from_millis(200)).await;
            p.accepted(Instant::now());
        }
    }

    /// 5/s with a second's burst: after the hold, probing lifts the rate past 5/s and the
    /// burst lets it run clean for seconds (the rate is remembered as one to come back
    /// to), while Graph goes on accepting 5 a second. When the 429s come, the rate goes
    /// back under the clean one, but what was learned is the 5/s Graph accepted: paced
    /// over it still, the scope is not "under what Graph accepted" (which would blame the
    /// next 429 on a narrower limit, a team's).
    #[tokio::test(start_paused = true)]
    async fn a_rate_that_ran_clean_on_a_burst_is_not_what_graph_accepted() {
        let mut p = Pacer::new(20.0, Instant::now());
        accept_for(&mut p, 5).await;
        for _ in 0..5 {
            p.answered_429(Instant::now());
        }
        let first = p.cut(Instant::now());
        assert!(first < 5.5, "{first}");
        while p.rate < 5.8 {
            accept_for(&mut p, 1).await;
        }
        for _ in 0..5 {
            p.answered_429(Instant::now());
        }
        let back = p.cut(Instant::now());
        assert!(back > 5.0, "back under the rate that ran clean: {back}");
        assert!(!p.under_learned_limit(), "learned {:?}", p.learned);
    }

    /// Graph accepted 2 a second, but for 3 s of the last 5 a `Retry-After` let nothing
    /// through: the limit is 2 a second, not the 0.8 the whole window shows.
    #[tokio::test(start_paused = true)]
    async fn time_under_a_fence_does_not_count_against_what_graph_accepted() {
        let start = Instant::now();
        let mut p = Pacer::new(20.0, start);
        p.answered_429(start);
        p.fence_until(start + Duration::from_secs(3));
        tokio::time::advance(Duration::from_secs(3)).await;
        for _ in 0..4 {
            tokio::time::advance(Duration::from_millis(500)).await;
            p.accepted(Instant::now());
        }
        for _ in 0..3 {
            p.answered_429(Instant::now());
        }
        let rate = p.cut(Instant::now());
        assert!((rate - 2.0 * UNDER).abs() < 0.01, "{rate}");
    }

    /// 1/s, answered the way a token bucket answers: every request after the accepted one
    /// meets a 429 with the wait until the next token, 0.93 s. The waits are the limit's
    /// refill, not time lost to it: the limit is 1/s (it was read as 5/s, the floor of a
    /// second of unfenced time, and took eight cuts of a fifth each to come down).
    #[tokio::test(start_paused = true)]
    async fn a_retry_after_that_is_the_limits_refill_counts_as_time_graph_accepted_in() {
        let mut p = Pacer::new(15.0, Instant::now());
        for _ in 0..8 {
            p.accepted(Instant::now());
            tokio::time::advance(Duration::from_millis(70)).await;
            p.answered_429(Instant::now());
            p.fence_until(Instant::now() + Duration::from_millis(930));
            tokio::time::advance(Duration::from_millis(930)).await;
        }
        p.accepted(Instant::now());
        tokio::time::advance(Duration::from_millis(70)).await;
        p.answered_429(Instant::now());
        let rate = p.cut(Instant::now());
        assert!((rate - UNDER).abs() < 0.02, "{rate}");
    }

    /// One long `Retry-After` and a request after it say nothing of a refill: the wait is
    /// left out, as any penalty, not read as a limit of one request in four seconds.
    #[tokio::test(start_paused = true)]
    async fn one_long_retry_after_is_no_refill() {
        let mut p = Pacer::new(15.0, Instant::now());
        p.answered_429(Instant::now());
        p.fence_until(Instant::now() + Duration::from_secs(4));
        tokio::time::advance(Duration::from_secs(4)).await;
        p.accepted(Instant::now());
        tokio::time::advance(Duration::from_millis(100)).await;
        p.answered_429(Instant::now());
        let rate = p.cut(Instant::now());
        assert!((rate - UNDER).abs() < 0.01, "{rate}");
    }

    /// A team's pacer has the tenant's fences, mostly other teams' waits: they are left
    /// out of what its own limit accepted however much of the window they fill.
    #[tokio::test(start_paused = true)]
    async fn a_team_pacer_leaves_the_tenants_fences_out() {
        let mut tenant = Pacer::new(15.0, Instant::now());
        let mut accepted = VecDeque::new();
        for _ in 0..8 {
            accepted.push_back(Instant::now());
            tokio::time::advance(Duration::from_millis(100)).await;
            tenant.fence_until(Instant::now() + Duration::from_millis(900));
            tokio::time::advance(Duration::from_millis(900)).await;
        }
        let throttled = VecDeque::from([Instant::now(); 3]);
        let mut team = tenant.narrower(Instant::now(), accepted, throttled);
        // Four accepted in the window, all but half a second of it fenced: 4/s over the
        // second the measure never goes under, not the 0.8/s of counting the fences in.
        let rate = team.cut(Instant::now());
        assert!((rate - 4.0 * UNDER).abs() < 0.01, "{rate}");
    }

    /// A 429 without `Retry-After` told nothing about a wait: the half second we waited
    /// after each is our own, and what Graph accepted over the window is 5 a second, not
    /// the 10 a second of the time we sent in.
    #[tokio::test(start_paused = true)]
    async fn our_own_wait_after_a_429_without_retry_after_is_no_fence_in_the_measure() {
        let mut p = Pacer::new(15.0, Instant::now());
        for _ in 0..8 {
            for _ in 0..5 {
                p.accepted(Instant::now());
                tokio::time::advance(Duration::from_millis(100)).await;
            }
            p.answered_429(Instant::now());
            p.fence_after_429(Instant::now() + Duration::from_millis(500), false);
            assert!(p.ready_at(Instant::now()) >= Instant::now() + Duration::from_millis(500));
            tokio::time::advance(Duration::from_millis(500)).await;
        }
        let rate = p.cut(Instant::now());
        assert!((rate - 5.0 * UNDER).abs() < 0.25, "{rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_is_the_share_of_slots_nobody_took() {
        let start = Instant::now();
        let mut p = Pacer::new(10.0, start);
        // Busy: every slot taken for a second.
        for _ in 0..10 {
            let at = p.ready_at(Instant::now());
            tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
            p.take(Instant::now());
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(p.idle_share(Instant::now(), Duration::from_secs(1)) < 0.01);
        // Then one request in the next second.
        tokio::time::advance(Duration::from_millis(500)).await;
        p.take(Instant::now());
        tokio::time::advance(Duration::from_millis(500)).await;
        let idle = p.idle_share(Instant::now(), Duration::from_secs(1));
        assert!((idle - 0.9).abs() < 0.01, "{idle}");
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
        assert_eq!(p.ready_at(now), now + Duration::from_secs(2));
    }
}
