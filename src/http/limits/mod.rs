//! Rate limits enforced before sending (Graph throttling guidance), and what the limiter
//! learns from 429s (issue 11).
//!
//! Budgets: channel messages for the whole tenant (`[limits] requests_per_second`, aimed a
//! little under), each channel (`per_channel_requests_per_second`: spaced from the real
//! departure of the channel's last request), the directory and the team endpoints, and
//! requests in flight (`[limits] concurrency`). A channel waiting for its per-channel slot
//! holds nothing else: the request permit is taken only once the channel may send, so the
//! tenant budget stays busy with the channels that can use it. Tenant slots are handed out
//! from a queue: the channel expected to need the most requests still ([`rank`]) goes
//! first (one of 2 000 pages among 500 small ones must not lose a tenant slot's wait on
//! every one of its requests, which its own rate can never make up), the rest first come,
//! first served, so no channel starves behind the others. Nothing is reserved ahead, so a
//! fence or a cut holds every waiting request at once. A team with a pacer of its own
//! hands its slots round its channels in a line of its own ([`LineKey`]) before they join
//! the tenant's queue.
//!
//! Graph does not say which of its limits a 429 hit (per tenant, per team, per user, per
//! channel: its documentation names all of them). So:
//! - every 429 fences the whole tenant for its full `Retry-After` (a 429 on a channel we
//!   paced at its configured rate cannot be that channel's own limit), and the channel
//!   itself; a 429 without `Retry-After` fences for one interval of the new rate. Even
//!   where the channel was sent faster than Graph's documented 1/s, a first 429 cannot
//!   tell the channel's limit from the tenant's, and guessing "the channel" is what lets
//!   other channels run into the tenant's `Retry-After`. The throttled request itself
//!   goes first when the fence ends (the token Graph refilled is its), the rest one
//!   interval later. A 429 of a channel sent at its own spacing may still be its own
//!   limit, met by a request that arrived early: the channels' spacing widens a little
//!   ([`CHANNEL_WIDEN`]), and narrows back after minutes without;
//! - the rate of the scope the 429 points at is cut to a little under what Graph accepted
//!   in the last seconds (leaving out the time a `Retry-After` let nothing through,
//!   unless such waits fill most of it: then they are the limit's own refill; a wait of
//!   ours after a 429 without `Retry-After` is never left out), or back under the last
//!   rate that ran clean when the rate had crept past it: the tenant when 429s come from
//!   several teams together (or only one team is busy, or the tenant is paced at a limit
//!   it learned, or over it), else that team, which then gets a pacer of its own —
//!   dropped again when 429s go on, other teams' with them, while the team is paced
//!   under what Graph accepted of it. The other way round too: 429s that go on while the tenant is paced
//!   under what Graph accepted of it in all come from the teams' limits (a pace of the
//!   whole tenant hands its slots to whichever channels are ready, so one team may still
//!   get more than its share): from then on each 429 cuts its team's pacer, and the
//!   tenant's rate creeps back up at once. That is how teams whose lists came in one after
//!   the other, so that their 429s first looked like the tenant's, still each get their
//!   own limit. That reading is refuted in turn (for the rest of the run, team pacers
//!   dropped) by team pacers meeting 429s under what Graph accepted of them together
//!   with other teams, or by 429s
//!   that stay a large share of the answers ([`Reading`]). After a quiet hold, rates creep
//!   back up ([`pacer`]).

mod pacer;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use pacer::{interval, Pacer};

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// `/users`, `/me`.
    Directory,
    /// `/me/joinedTeams`, `/teams/{id}`, `/teams/{id}/channels`.
    Team,
    /// Messages, delta and replies of one channel of one team. `left`: the requests the
    /// channel is still expected to need (from its last run; 0 when unknown).
    Channel {
        team: &'a str,
        channel: &'a str,
        left: u32,
    },
}

/// We aim this far under the configured rates. Graph counts arrivals: a request that left
/// on time can arrive a little early behind a slow predecessor.
const TENANT_MARGIN: f64 = 0.98;
const CHANNEL_MARGIN: f64 = 0.97;
/// A 429 of a channel that was sending at its own spacing is its own limit met by a
/// request that arrived early (delays on the way vary): every channel is spaced this much
/// wider from then on, down to [`CHANNEL_FLOOR`] of the configured rate. Spaced 3 % over
/// Graph's 1/s, a request that reached Graph 31 ms sooner than the one before met a 429,
/// and each 429 costs the channel a slot: 50 ms of arrival jitter took a long channel to
/// 85 % of its rate, 95 % once its spacing followed.
const CHANNEL_WIDEN: f64 = 1.01;
const CHANNEL_FLOOR: f64 = 0.9;
/// After this long without widening, the spacing narrows back by a step: a 429 that had
/// nothing to do with the channels' limit costs them a percent for minutes, not for the
/// rest of the run.
const CHANNEL_RECOVER: Duration = Duration::from_secs(120);
/// How much later than its spacing a request may have left and still be taken to have
/// been sent at that spacing.
const AT_SPACING: f64 = 1.02;
/// 429s from two teams this close together point at a limit wider than a team.
const TOGETHER: Duration = Duration::from_secs(2);
/// A team that answered this recently was busy: a 429 elsewhere spared it.
const BUSY: Duration = Duration::from_secs(1);
/// Only a 429 with another one this recent in the same scope cuts a rate.
const REPEATED: Duration = Duration::from_secs(5);
/// The tenant's budget has room for more channels when more than this share of it went
/// unused over the last [`SPARE_OVER`].
const SPARE: f64 = 0.1;
const SPARE_OVER: Duration = Duration::from_secs(2);
/// Two refutations of the teams' limits this close together settle it, as does a share of
/// 429s this large among the tenant's answers this long after the teams took over.
const REFUTED_WITHIN: Duration = Duration::from_secs(10);
const PER_TEAM_TRIAL: Duration = Duration::from_secs(5);
const STILL_THROTTLED: f64 = 0.3;
/// How long a team's accepted answers are remembered.
const TEAM_HISTORY: Duration = Duration::from_secs(5);

/// Permission to send one request; held until its answer is read.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// A request's place in the queue of its budget; leaving (or being dropped with the
/// acquiring future) hands the turn on.
struct Place<'l> {
    limiter: &'l Limiter,
    kind: usize,
    id: u64,
}

impl<'l> Place<'l> {
    /// Joins behind every request expected to need as many requests still or more (a
    /// throttled request's retry, `front`, at the very front).
    fn join(limiter: &'l Limiter, scope: Scope, front: bool) -> Self {
        let kind = kind(scope);
        let mut state = limiter.state();
        state.last_id += 1;
        let id = state.last_id;
        let queue = &mut state.queues[kind];
        if front {
            queue.push_front((u32::MAX, id));
        } else {
            let left = match scope {
                Scope::Channel { left, .. } => rank(left),
                _ => 0,
            };
            let at = queue.partition_point(|(l, _)| *l >= left);
            queue.insert(at, (left, id));
        }
        Place { limiter, kind, id }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        let queue = &mut state.queues[self.kind];
        let head = queue.front().map(|(_, id)| *id) == Some(self.id);
        queue.retain(|(_, id)| *id != self.id);
        drop(state);
        if head {
            self.limiter.turn.notify_waiters();
        }
    }
}

/// The queue a scope waits in: one per budget.
fn kind(scope: Scope) -> usize {
    match scope {
        Scope::Channel { .. } => 0,
        Scope::Directory => 1,
        Scope::Team => 2,
    }
}

/// Where a channel expected to need `left` requests still stands among others, in steps
/// of a quarter (36 to 44 rank alike, 45 one step up, 2 000 far ahead of a few). The
/// counts are estimates — the requests the channel took last run — and ranked by the exact
/// count a channel expected to need 40 requests waited behind every one expected to need
/// 42 on each of its requests: a backfill, whose pages the last run's count predicts only
/// roughly, ended with the channels that had started last sending alone (c's backfill:
/// 93 → 95 % of the ceiling).
pub fn rank(left: u32) -> u32 {
    if left == 0 {
        0
    } else {
        1 + (f64::from(left).ln() / 1.25f64.ln()) as u32
    }
}

/// Per-channel pacing: when its last request left, and its own fence.
#[derive(Debug, Clone, Copy)]
struct ChannelPace {
    sent: Instant,
    /// When the request before the last one left (the channel's last gap: `sent - before`).
    before: Option<Instant>,
    /// Requests of the channel that left so far in this run.
    departures: u32,
    fence: Instant,
    /// The throttled request's turn: it leaves at `at`, the first slot after its fence,
    /// ahead of requests queued before the 429 — unless a later 429's `Retry-After` runs
    /// past `at`.
    retry: Option<Ticket>,
}

#[derive(Debug, Clone, Copy)]
struct Ticket {
    at: Instant,
}

impl ChannelPace {
    fn new(now: Instant) -> Self {
        ChannelPace {
            sent: now,
            before: None,
            departures: 0,
            fence: now,
            retry: None,
        }
    }
}

/// A channel's place in its team's line: the one that sent longest ago first (a channel's
/// first request: since it asked). A team's slots go round its channels, so channels of
/// one length end together: taken by whichever channel's timer fired first, they left
/// some channels half as far along as the rest at the end, to send their last pages alone
/// at their own rate (4/s per team: a team's last channel sent its last 10 pages alone, 9 s
/// at 1/s). Round, not by the requests expected still: ranked by those, a channel expected
/// to need none waited until its teammates were done.
type LineKey = (Instant, u64);

/// A paced team's line.
#[derive(Default)]
struct Line {
    /// Channels whose own spacing lets them send, waiting for one of the team's slots.
    waiting: BTreeSet<LineKey>,
    /// Channels given a slot that have not sent yet (waiting for a page's place or the
    /// tenant's slot), by when: each holds the team's next slot back for one interval of
    /// its rate at most, then is passed by.
    through: HashMap<u64, Instant>,
}

/// A channel's wait for its own pacing ([`Limiter::own_pace`]); dropped, it leaves its
/// team's line if it did not leave it by sending.
#[must_use = "dropped, it leaves the team's line at once"]
pub struct OwnPace<'l> {
    limiter: &'l Limiter,
    /// The channel, where this wait put it in its team's line.
    channel: Option<String>,
}

impl Drop for OwnPace<'_> {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            self.limiter.state().leave_line(channel);
        }
    }
}

/// What a channel waits for before it joins its budget's queue.
enum Own {
    /// Nothing: it may join.
    Go,
    /// Its own spacing or fence: until then, out of its team's line.
    Spacing(Instant),
    /// Its turn in its team's line: until then.
    Team(Instant),
}

/// What the limiter learns and remembers. A std `Mutex`: held for a few steps of
/// arithmetic, never across an await.
struct State {
    messages: Pacer,
    directory: Pacer,
    teams_api: Pacer,
    /// Teams a 429 pointed at, with a pacer each.
    team_pacers: HashMap<String, Pacer>,
    /// When each team's recent requests were accepted (the last few seconds): how a team's
    /// own limit is measured the moment a 429 points at it.
    team_seen: HashMap<String, VecDeque<Instant>>,
    channels: HashMap<String, ChannelPace>,
    /// Recent 429s of channel messages: when, and which team.
    recent: VecDeque<(Instant, String)>,
    /// The earliest turn the next throttled request can be given.
    retry_next: Instant,
    /// Whose limits the 429s are read as ([`Reading`]).
    reading: Reading,
    /// When team pacers met 429s under what Graph had accepted of them while the teams'
    /// limits were the reading (the last few seconds).
    refutations: VecDeque<Instant>,
    /// Requests waiting for a slot of each budget ([`kind`]), first in line first, with
    /// the requests their channel is expected to need still.
    queues: [VecDeque<(u32, u64)>; 3],
    /// Per paced team, its channels whose own spacing lets them send ([`Line`]); and
    /// each such channel's team and place.
    team_lines: HashMap<String, Line>,
    in_line: HashMap<String, (String, LineKey)>,
    last_id: u64,
    /// How far apart a channel's requests leave: the configured per-channel rate less its
    /// margin, widened by early arrivals ([`CHANNEL_WIDEN`]) up to the widest, narrowed back
    /// a step every [`CHANNEL_RECOVER`] without one; and when it last changed.
    channel_interval: Duration,
    narrowest_channel_interval: Duration,
    widest_channel_interval: Duration,
    channel_interval_set: Instant,
    /// The last 429 of a channel's request, whatever it taught.
    last_channel_429: Option<Instant>,
}

/// Whose limits the 429s of channel messages are read as.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// By the rules of [`State::learn`]: the tenant's when several teams meet them together.
    Undecided,
    /// The teams' (since then): a 429 came while the tenant was paced under what Graph had
    /// accepted of it in all, and every 429 now goes to its team's pacer.
    Teams { since: Instant },
    /// The tenant's, for the rest of the run: the teams' reading was refuted.
    Tenant,
}

pub struct Limiter {
    state: Mutex<State>,
    /// Wakes the queues when their head leaves.
    turn: Notify,
    requests: Arc<Semaphore>,
}

impl Limiter {
    /// Budgets for `tenant_rps` channel-message requests a second, `channel_rps` per
    /// channel, and `concurrency` requests in flight.
    pub fn new(tenant_rps: f64, channel_rps: f64, concurrency: usize) -> Self {
        let now = Instant::now();
        let tenant = tenant_rps * TENANT_MARGIN;
        Limiter {
            state: Mutex::new(State {
                messages: Pacer::new(tenant, now),
                // The directory and team endpoints have budgets of their own at Graph; ours
                // keep them from eating into the channel-message budget.
                directory: Pacer::new(tenant, now),
                teams_api: Pacer::new(tenant, now),
                team_pacers: HashMap::new(),
                team_seen: HashMap::new(),
                channels: HashMap::new(),
                recent: VecDeque::new(),
                retry_next: now,
                reading: Reading::Undecided,
                refutations: VecDeque::new(),
                queues: Default::default(),
                team_lines: HashMap::new(),
                in_line: HashMap::new(),
                last_id: 0,
                channel_interval: interval(channel_rps * CHANNEL_MARGIN),
                narrowest_channel_interval: interval(channel_rps * CHANNEL_MARGIN),
                widest_channel_interval: interval(channel_rps * CHANNEL_FLOOR),
                channel_interval_set: now,
                last_channel_429: None,
            }),
            turn: Notify::new(),
            requests: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `scope` may send and returns the request's slot. Not cancel-aware by
    /// itself; callers race it against shutdown (dropping it leaves the queue cleanly).
    ///
    /// A request first waits for its own pacing (its channel's spacing and fence, its
    /// team's pacer) holding nothing, then joins the queue of its budget: the head takes
    /// the budget's next slot when it comes, then a request permit, and leaves. Nothing is
    /// reserved ahead, so a fence or a cut holds every waiting request at once. A
    /// throttled request's retry joins at the front and goes at its turn (see
    /// [`Limiter::throttled`]).
    pub async fn acquire(&self, scope: Scope<'_>) -> Slot {
        let mut ticket = self.state().take_ticket(scope);
        loop {
            // Cooperative: however the loop turns, the worker is never held.
            tokio::task::consume_budget().await;
            let _line = match ticket {
                Some(t) if t.at > Instant::now() => {
                    tokio::time::sleep_until(t.at).await;
                    continue;
                }
                Some(_) => None,
                None => Some(self.own_pace(scope).await),
            };
            let place = Place::join(self, scope, ticket.is_some());
            loop {
                let turn = self.turn.notified();
                tokio::pin!(turn);
                turn.as_mut().enable();
                let now = Instant::now();
                let ready = {
                    let mut state = self.state();
                    if !state.is_head(scope, place.id) {
                        None
                    } else {
                        if ticket.is_some_and(|t| state.fence(scope) > t.at) {
                            // A later 429's Retry-After runs past the turn it was given.
                            ticket = None;
                        }
                        Some(match ticket {
                            Some(_) => now,
                            None => state.queue_ready(scope, now),
                        })
                    }
                };
                match ready {
                    None => turn.await,
                    Some(ready) if ready > now => {
                        let own = self.state().own_ready(scope);
                        if own > Instant::now() {
                            // Another channel of the team took its slot: wait for the next
                            // one out of the queue, so other teams go meanwhile.
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep_until(ready) => {}
                            _ = turn => {}
                        }
                    }
                    Some(_) => {
                        let permit = self
                            .requests
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("the request semaphore is never closed");
                        let mut state = self.state();
                        let now = Instant::now();
                        // A retry or a longer channel may have joined ahead meanwhile.
                        let go = state.is_head(scope, place.id)
                            && match ticket {
                                Some(t) => state.fence(scope) <= t.at,
                                None => state.queue_ready(scope, now) <= now,
                            };
                        if go {
                            state.take_turn(scope, now);
                            state.departed(scope);
                            drop(state);
                            drop(place);
                            return Slot { _permit: permit };
                        }
                    }
                }
            }
            drop(place);
            ticket = None;
        }
    }

    /// Waits until `scope`'s own pacing (its channel's spacing and fence, its team's
    /// pacer) lets it send, holding nothing but a place in its team's line: what a caller
    /// that must take something else before [`Limiter::acquire`] (a page's place in
    /// memory) waits for first.
    ///
    /// The channels of a team with a pacer of its own whose spacing lets them send line
    /// up for the team's slots ([`LineKey`]): the one `k` places down the line goes `k`
    /// intervals of the team's rate after its next slot, one more for each channel given
    /// a slot that has not sent yet (for an interval at most). Hold the returned value
    /// until the request has left: dropped, it leaves the line.
    pub async fn own_pace(&self, scope: Scope<'_>) -> OwnPace<'_> {
        let mut pace = OwnPace {
            limiter: self,
            channel: None,
        };
        loop {
            tokio::task::consume_budget().await;
            let now = Instant::now();
            let (own, joined) = self.state().own(scope, now);
            if joined {
                if let Scope::Channel { channel, .. } = scope {
                    pace.channel = Some(channel.to_string());
                }
            }
            match own {
                Own::Go => return pace,
                Own::Spacing(at) | Own::Team(at) => tokio::time::sleep_until(at).await,
            }
        }
    }

    /// Graph answered 429 for `scope`; returns how long the request waits before it goes
    /// again (`Retry-After`, or one interval of the cut rate when Graph gave none).
    pub fn throttled(&self, scope: Scope<'_>, retry_after: Option<Duration>) -> Duration {
        let now = Instant::now();
        let mut state = self.state();
        let Scope::Channel { team, channel, .. } = scope else {
            let pacer = state.scope_pacer(scope);
            pacer.answered_429(now);
            let rate = pacer.cut(now);
            let wait = retry_after.unwrap_or_else(|| interval(rate).max(Duration::from_secs(1)));
            pacer.fence_after_429(now + wait, retry_after.is_some());
            return wait;
        };
        // The channel's first request of the run had no pacing of ours before it: its
        // 429 may be the channel's own limit, used up by a run just before this one (or
        // another client). It is fenced like any other, but says nothing about a team's or
        // the tenant's limit, so nothing is cut for it.
        let first = state
            .channels
            .get(channel)
            .is_some_and(|p| p.departures == 1);
        // Sent at its own spacing, it may have met its own limit by arriving early: where
        // no other 429 came within seconds, the channels' spacing widens. Learned from all
        // the same (a limit of the tenant or a team narrower than the channels sent
        // together meets them at their spacing too, but in 429s close together, which
        // say nothing about the channels' own limit).
        let spaced = state.channels.get(channel).is_some_and(|p| {
            p.before
                .is_some_and(|b| p.sent - b <= state.channel_interval.mul_f64(AT_SPACING))
        });
        let lone = state
            .last_channel_429
            .is_none_or(|at| now.duration_since(at) > REPEATED);
        state.last_channel_429 = Some(now);
        if spaced && lone && !first {
            state.widen_channels(now);
        }
        let rate = if first {
            state.team_rate(team)
        } else {
            state.learn(team, now)
        };
        let wait = retry_after.unwrap_or_else(|| interval(rate).max(Duration::from_secs(1)));
        let until = now + wait;
        let said = retry_after.is_some();
        // The throttled request goes first when the fence ends (and its channel's spacing
        // allows): the token Graph refills by then is its, not that of a request queued
        // behind it. Sent to the back of the queue instead, it would leave the refilled
        // token unused for a whole interval, and Graph would seem to accept half the rate
        // it does. Everything else waits one more interval after it.
        let pace = *state
            .channels
            .entry(channel.to_string())
            .or_insert(ChannelPace::new(now));
        let tenant_interval = interval(state.messages.rate);
        let own = pace.sent + state.channel_interval;
        if own > until + tenant_interval {
            // The channel's own spacing holds the retry longer than the fence: others use
            // the refilled token meanwhile, and the retry queues like any request.
            state.messages.fence_after_429(until, said);
            for t in state.team_pacers.values_mut() {
                t.fence_after_429(until, said);
            }
            let pace = state.channels.get_mut(channel).expect("inserted above");
            pace.fence = pace.fence.max(until);
            return wait;
        }
        let mut at = until.max(own).max(state.retry_next);
        if let Some(t) = state.team_pacers.get(team) {
            at = at.max(t.ready_at(at));
        }
        let fence = at + tenant_interval;
        state.retry_next = fence;
        // The tenant's fence holds every team: their pacers know it was time in which
        // nothing could be accepted. The turn and the interval after it are held, not
        // fenced: the retry is accepted in them.
        state.messages.fence_after_429(until, said);
        state.messages.hold_until(fence);
        for (name, t) in state.team_pacers.iter_mut() {
            let end = if name == team {
                at + interval(t.rate)
            } else {
                fence
            };
            t.fence_after_429(until, said);
            t.hold_until(end.max(fence));
        }
        let pace = state.channels.get_mut(channel).expect("inserted above");
        pace.fence = pace.fence.max(until);
        pace.retry = Some(Ticket { at });
        wait
    }

    /// Graph answered `scope` without a 429.
    pub fn succeeded(&self, scope: Scope<'_>) {
        let now = Instant::now();
        let mut state = self.state();
        if let Scope::Channel { team, .. } = scope {
            if let Some(t) = state.team_pacers.get_mut(team) {
                t.accepted(now);
                if t.rate >= state.messages.rate {
                    // Back to the tenant's pace: the team needs no pacer of its own.
                    state.team_pacers.remove(team);
                }
            }
            let seen = state.team_seen.entry(team.to_string()).or_default();
            seen.push_back(now);
            while seen
                .front()
                .is_some_and(|t| now.duration_since(*t) > TEAM_HISTORY)
            {
                seen.pop_front();
            }
        }
        state.scope_pacer(scope).accepted(now);
    }

    /// Whether the tenant's budget for channel messages went partly unused lately while a
    /// request permit is free: the channels in flight are held back by their own limits
    /// (per channel, per team), and another channel could use what they leave.
    pub fn has_spare(&self) -> bool {
        let idle = self.state().messages.idle_share(Instant::now(), SPARE_OVER);
        idle > SPARE && self.requests.available_permits() > 0
    }

    /// The tenant's channel-message rate now.
    #[cfg(test)]
    pub fn message_rate(&self) -> f64 {
        self.state().messages.rate
    }
}

impl State {
    fn scope_pacer(&mut self, scope: Scope) -> &mut Pacer {
        match scope {
            Scope::Directory => &mut self.directory,
            Scope::Team => &mut self.teams_api,
            Scope::Channel { .. } => &mut self.messages,
        }
    }

    /// When the channel (and its team) may send, as far as their own pacing goes.
    fn own_ready(&self, scope: Scope) -> Instant {
        let now = Instant::now();
        let Scope::Channel { team, channel, .. } = scope else {
            return now;
        };
        let mut at = now;
        if let Some(p) = self.channels.get(channel) {
            at = at.max(p.fence).max(p.sent + self.channel_interval);
        }
        if let Some(t) = self.team_pacers.get(team) {
            at = at.max(t.ready_at(now));
        }
        at
    }

    /// Where `scope` stands as far as its own pacing goes: its channel's spacing and
    /// fence, then its turn in its team's line and the team's pacer; and whether it joined
    /// the line just now.
    fn own(&mut self, scope: Scope, now: Instant) -> (Own, bool) {
        let Scope::Channel { team, channel, .. } = scope else {
            return (Own::Go, false);
        };
        let pace = self.channels.get(channel);
        if let Some(p) = pace {
            let at = p.fence.max(p.sent + self.channel_interval);
            if at > now {
                self.leave_line(channel);
                return (Own::Spacing(at), false);
            }
        }
        let Some(t) = self.team_pacers.get(team) else {
            return (Own::Go, false);
        };
        let (next, ready, step) = (t.next_slot(), t.ready_at(now), interval(t.rate));
        let (key, joined) = match self.in_line.get(channel) {
            Some((_, key)) => (*key, false),
            None => {
                self.last_id += 1;
                let key = (pace.map_or(now, |p| p.sent), self.last_id);
                self.in_line
                    .insert(channel.to_string(), (team.to_string(), key));
                (key, true)
            }
        };
        let line = self.team_lines.entry(team.to_string()).or_default();
        if line.through.contains_key(&key.1) {
            // Given its slot already (a page's place in between).
            return (Own::Go, joined);
        }
        line.through.retain(|_, at| *at + step > now);
        // Waits for a slot: a new place, or one passed by (again, at the front).
        line.waiting.insert(key);
        let ahead = line.waiting.range(..key).count() + line.through.len();
        let at = if ahead == 0 {
            ready
        } else {
            (next + step * ahead as u32).max(ready)
        };
        if at > now {
            return (Own::Team(at), joined);
        }
        line.waiting.remove(&key);
        line.through.insert(key.1, now);
        (Own::Go, joined)
    }

    /// Takes `channel` out of its team's line.
    fn leave_line(&mut self, channel: &str) {
        let Some((team, key)) = self.in_line.remove(channel) else {
            return;
        };
        if let Some(line) = self.team_lines.get_mut(&team) {
            line.waiting.remove(&key);
            line.through.remove(&key.1);
            if line.waiting.is_empty() && line.through.is_empty() {
                self.team_lines.remove(&team);
            }
        }
    }

    /// The turn a throttled request of this channel was given, if it was.
    fn take_ticket(&mut self, scope: Scope) -> Option<Ticket> {
        let Scope::Channel { channel, .. } = scope else {
            return None;
        };
        self.channels.get_mut(channel)?.retry.take()
    }

    /// The latest fence that holds `scope` back: its budget's, its team's, its channel's.
    fn fence(&self, scope: Scope) -> Instant {
        match scope {
            Scope::Directory => self.directory.fence,
            Scope::Team => self.teams_api.fence,
            Scope::Channel { team, channel, .. } => {
                let own = self.channels.get(channel).map(|p| p.fence);
                let team = self.team_pacers.get(team).map(|p| p.fence);
                self.messages
                    .fence
                    .max(own.unwrap_or(self.messages.fence))
                    .max(team.unwrap_or(self.messages.fence))
            }
        }
    }

    fn is_head(&self, scope: Scope, id: u64) -> bool {
        self.queues[kind(scope)].front().map(|(_, id)| *id) == Some(id)
    }

    /// When the head of `scope`'s queue may leave: its budget's next slot, every fence
    /// that holds it, its own pacing.
    fn queue_ready(&mut self, scope: Scope, now: Instant) -> Instant {
        let mut at = self.scope_pacer(scope).ready_at(now).max(self.fence(scope));
        if let Scope::Channel { team, .. } = scope {
            if let Some(t) = self.team_pacers.get(team) {
                at = at.max(t.ready_at(now));
            }
        }
        at
    }

    /// The request leaves now: it takes its budget's slot (and its team's).
    fn take_turn(&mut self, scope: Scope, now: Instant) {
        self.scope_pacer(scope).take(now);
        if let Scope::Channel { team, .. } = scope {
            if let Some(t) = self.team_pacers.get_mut(team) {
                t.take(now);
            }
        }
    }

    fn departed(&mut self, scope: Scope) {
        if let Scope::Channel { channel, .. } = scope {
            let now = Instant::now();
            let recovered = now.duration_since(self.channel_interval_set) >= CHANNEL_RECOVER;
            if recovered && self.channel_interval > self.narrowest_channel_interval {
                self.channel_interval = self
                    .channel_interval
                    .div_f64(CHANNEL_WIDEN)
                    .max(self.narrowest_channel_interval);
                self.channel_interval_set = now;
            }
            let pace = self
                .channels
                .entry(channel.to_string())
                .or_insert(ChannelPace::new(now));
            pace.before = (pace.departures > 0).then_some(pace.sent);
            pace.sent = now;
            pace.departures = pace.departures.saturating_add(1);
            // Its place in the team's line was for this request; those given a slot
            // before it that have not sent have lost theirs (they wait at the front).
            if let Some((team, key)) = self.in_line.get(channel).cloned() {
                if let Some(line) = self.team_lines.get_mut(&team) {
                    let given = line.through.get(&key.1).copied().unwrap_or(now);
                    line.through.retain(|_, at| *at > given);
                }
            }
            self.leave_line(channel);
            if self.channels.len() > 4096 {
                // Channels that have not sent for a minute need no spacing any more.
                self.channels.retain(|_, p| {
                    now.duration_since(p.sent) < Duration::from_secs(60) || p.fence > now
                });
            }
        }
    }

    /// Spaces every channel's requests [`CHANNEL_WIDEN`] wider, up to the widest.
    fn widen_channels(&mut self, now: Instant) {
        // At the widest it stays there: the wait before it narrows starts over all the same.
        self.channel_interval_set = now;
        let wider = self.channel_interval.mul_f64(CHANNEL_WIDEN);
        if wider <= self.widest_channel_interval && wider > self.channel_interval {
            self.channel_interval = wider;
            tracing::debug!(
                per_channel_requests_per_second = format!("{:.3}", 1.0 / wider.as_secs_f64()),
                "A channel sent at its own spacing met a 429; spacing channels wider."
            );
        }
    }

    /// The rate `team`'s requests go at: its own pacer's, else the tenant's.
    fn team_rate(&self, team: &str) -> f64 {
        let paced = self.team_pacers.get(team).map(|p| p.rate);
        paced.unwrap_or(self.messages.rate)
    }

    /// Lays a 429 of `team` at the door of the scope it most likely hit and cuts that
    /// scope's rate; returns the rate that now applies to the team's requests.
    fn learn(&mut self, team: &str, now: Instant) -> f64 {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > REPEATED)
        {
            self.recent.pop_front();
        }
        let together = |t: &Instant| now.duration_since(*t) <= TOGETHER;
        self.team_seen.retain(|_, seen| {
            seen.back()
                .is_some_and(|t| now.duration_since(*t) < TEAM_HISTORY)
        });
        let other_team_429 = self.recent.iter().any(|(at, t)| t != team && together(at));
        let earlier_of_team = self.recent.iter().any(|(_, t)| t == team);
        let earlier = !self.recent.is_empty();
        let other_team_busy = self.team_seen.iter().any(|(t, seen)| {
            t != team
                && seen
                    .back()
                    .is_some_and(|at| now.duration_since(*at) <= BUSY)
        });
        // A team paced under what Graph accepted of it when its pacer was last cut cannot
        // be over its own limit: when other teams meet 429s with it, the 429 comes from a
        // wider one, and the team pacer was a guess (429s of requests sent before that cut
        // excepted). Alone, it is the team's own limit, which what Graph accepted
        // overstated: a limit's burst lets a team run a fifth over it for seconds (4/s per
        // team: read as a refutation, it handed the run to a tenant pace, 73 %).
        let dropped_guess = other_team_429
            && self.team_pacers.get(team).is_some_and(|p| {
                p.under_learned_limit() && !p.cut_within(now, Duration::from_secs(1))
            });
        if dropped_guess {
            self.team_pacers.remove(team);
        }
        self.recent.push_back((now, team.to_string()));
        self.messages.answered_429(now);
        if let Some(p) = self.team_pacers.get_mut(team) {
            p.answered_429(now);
        }
        // Likewise a tenant paced under what Graph accepted of it when it was last cut: the
        // 429 comes from a narrower limit, a team's, which a pace of the whole tenant cannot
        // keep (its slots go to whichever channels are ready, not evenly to the teams).
        let tenant_guess_wrong = self.messages.under_learned_limit()
            && !self.messages.cut_within(now, Duration::from_secs(1));
        if tenant_guess_wrong && matches!(self.reading, Reading::Undecided) {
            self.messages.release();
            self.reading = Reading::Teams { since: now };
        }
        if let Reading::Teams { since } = self.reading {
            // The teams' limits were a guess too. It is refuted by a team pacer meeting
            // 429s under what Graph accepted of it, with other teams' 429s around them
            // (`dropped_guess`), twice within seconds (once may be a channel's own
            // limit), or by 429s that stay a large share of the answers seconds after
            // the teams took over (a tenant's limit spread over many small
            // teams, a 429 or two each, paces none of them). Then the tenant's it is, for
            // the rest of the run (flipping between the two costs a burst of 429s each
            // time), and the teams' pacers go with the guess.
            if dropped_guess {
                self.refutations
                    .retain(|t| now.duration_since(*t) <= REFUTED_WITHIN);
                self.refutations.push_back(now);
            }
            let still_throttled = now.duration_since(since) >= PER_TEAM_TRIAL
                && self.messages.throttled_share(now) >= STILL_THROTTLED;
            if self.refutations.len() >= 2 || still_throttled {
                self.reading = Reading::Tenant;
                self.team_pacers.clear();
            }
        }
        let paced = self.team_pacers.contains_key(team);
        let team_limit = !dropped_guess
            && match self.reading {
                Reading::Tenant => !other_team_429 && (other_team_busy || paced),
                Reading::Teams { .. } => true,
                // A team with a pacer of its own answers for its 429s itself, other teams'
                // 429s around it or not (each may be at its own limit); `dropped_guess`
                // says when not. A tenant paced at a limit it learned, or over it, is where
                // a 429 of a team without a pacer comes from, however far apart the 429s
                // (a tenant's limit without `Retry-After` answers one every few seconds,
                // from whichever team: each alone looked like that team's).
                Reading::Undecided => {
                    paced || !other_team_429 && other_team_busy && !self.messages.at_learned_limit()
                }
            };
        if !team_limit {
            // A lone 429 is arrival jitter or a limit we cannot place: its fence is enough.
            // One cut per burst of them.
            if !earlier || self.messages.cut_within(now, Duration::from_secs(1)) {
                return self.messages.rate;
            }
            // A limit wider than a team: team pacers set in the same breath were guesses.
            self.team_pacers.retain(|_, p| !p.cut_within(now, TOGETHER));
            let rate = self.messages.cut(now);
            tracing::warn!(
                requests_per_second = format!("{rate:.2}"),
                "Graph throttles the tenant below [limits] requests_per_second; pacing at what it accepts."
            );
            return rate;
        }
        if !earlier_of_team {
            return self.team_rate(team);
        }
        let history = self.team_seen.get(team).cloned().unwrap_or_default();
        let throttled = self
            .recent
            .iter()
            .filter(|(_, t)| t == team)
            .map(|(at, _)| *at)
            .collect();
        let messages = &self.messages;
        let pacer = self.team_pacers.entry(team.to_string()).or_insert_with(|| {
            let mut p = messages.narrower(now, history, throttled);
            p.ceiling = f64::INFINITY;
            p
        });
        if pacer.cut_within(now, Duration::from_millis(500)) {
            return pacer.rate;
        }
        let rate = pacer.cut(now);
        tracing::info!(team = %team, requests_per_second = format!("{rate:.2}"), "Graph throttles one team; pacing its channels at what it accepts.");
        rate
    }
}

#[cfg(test)]
mod tests;
