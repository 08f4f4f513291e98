//! Rate limits enforced before sending (Graph throttling guidance), and what the limiter
//! learns from 429s (issue 11).
//!
//! Budgets: channel messages for the whole tenant (`[limits] requests_per_second`, aimed a
//! little under), each channel (`per_channel_requests_per_second`: spaced from the real
//! departure of the channel's last request), the directory and the team endpoints, and
//! requests in flight (`[limits] concurrency`). A channel waiting for its per-channel slot
//! holds nothing else: the request permit is taken only once the channel may send, so the
//! tenant budget stays busy with the channels that can use it. Tenant slots are handed out
//! first come, first served, so no channel starves behind the others.
//!
//! Graph does not say which of its limits a 429 hit (per tenant, per team, per user, per
//! channel: its documentation names all of them). So:
//! - every 429 fences the whole tenant for its full `Retry-After` (a 429 on a channel we
//!   paced at its configured rate cannot be that channel's own limit), and the channel
//!   itself; a 429 without `Retry-After` fences for one interval of the new rate. Even
//!   where the channel was sent faster than Graph's documented 1/s, a first 429 cannot
//!   tell the channel's limit from the tenant's, and guessing "the channel" is what lets
//!   other channels run into the tenant's `Retry-After`;
//! - the rate of the scope the 429 points at is cut to a little under what Graph accepted
//!   in the last seconds: the tenant when 429s come from several teams together (or only
//!   one team is busy), else that team, which then gets a pacer of its own. After a quiet
//!   hold, rates creep back up ([`pacer`]).

mod pacer;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use pacer::{interval, Pacer};

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// `/users`, `/me`.
    Directory,
    /// `/me/joinedTeams`, `/teams/{id}`, `/teams/{id}/channels`.
    Team,
    /// Messages, delta and replies of one channel of one team.
    Channel { team: &'a str, channel: &'a str },
}

/// We aim this far under the configured rates. Graph counts arrivals: a request that left
/// on time can arrive a little early behind a slow predecessor.
const TENANT_MARGIN: f64 = 0.98;
const CHANNEL_MARGIN: f64 = 0.97;
/// 429s from two teams this close together point at a limit wider than a team.
const TOGETHER: Duration = Duration::from_secs(2);
/// A team that answered this recently was busy: a 429 elsewhere spared it.
const BUSY: Duration = Duration::from_secs(1);
/// Only a 429 with another one this recent in the same scope cuts a rate.
const REPEATED: Duration = Duration::from_secs(5);
/// How long a team's accepted answers are remembered.
const TEAM_HISTORY: Duration = Duration::from_secs(5);

/// Permission to send one request; held until its answer is read.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Per-channel pacing: when its last request left, and its own fence.
#[derive(Debug, Clone, Copy)]
struct ChannelPace {
    sent: Instant,
    fence: Instant,
}

impl ChannelPace {
    fn new(now: Instant) -> Self {
        ChannelPace {
            sent: now,
            fence: now,
        }
    }
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
}

pub struct Limiter {
    state: Mutex<State>,
    channel_interval: Duration,
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
            }),
            channel_interval: interval(channel_rps * CHANNEL_MARGIN),
            requests: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `scope` may send and returns the request's slot. Not cancel-aware by
    /// itself; callers race it against shutdown.
    pub async fn acquire(&self, scope: Scope<'_>) -> Slot {
        loop {
            // The channel's (and its team's) own pacing first, holding nothing.
            let ready = self.state().own_ready(scope, self.channel_interval);
            if ready > Instant::now() {
                tokio::time::sleep_until(ready).await;
                continue;
            }
            let permit = self
                .requests
                .clone()
                .acquire_owned()
                .await
                .expect("the request semaphore is never closed");
            let at = self.state().reserve(scope, self.channel_interval);
            tokio::time::sleep_until(at).await;
            // A 429 elsewhere may have raised a fence while this request waited its turn.
            let mut state = self.state();
            if state.fence(scope) <= Instant::now() {
                state.departed(scope);
                return Slot { _permit: permit };
            }
        }
    }

    /// Graph answered 429 for `scope`; returns how long the request waits before it goes
    /// again (`Retry-After`, or one interval of the cut rate when Graph gave none).
    pub fn throttled(&self, scope: Scope<'_>, retry_after: Option<Duration>) -> Duration {
        let now = Instant::now();
        let mut state = self.state();
        let Scope::Channel { team, channel } = scope else {
            let pacer = state.scope_pacer(scope);
            pacer.answered_429(now);
            let rate = pacer.cut(now);
            let wait = retry_after.unwrap_or_else(|| interval(rate).max(Duration::from_secs(1)));
            pacer.fence_until(now + wait);
            return wait;
        };
        let rate = state.learn(team, now);
        let wait = retry_after.unwrap_or_else(|| interval(rate).max(Duration::from_secs(1)));
        let until = now + wait;
        state.messages.fence_until(until);
        if let Some(t) = state.team_pacers.get_mut(team) {
            t.fence_until(until);
        }
        let pace = state
            .channels
            .entry(channel.to_string())
            .or_insert(ChannelPace::new(now));
        pace.fence = pace.fence.max(until);
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
    fn own_ready(&self, scope: Scope, channel_interval: Duration) -> Instant {
        let now = Instant::now();
        let Scope::Channel { team, channel } = scope else {
            return now;
        };
        let mut at = now;
        if let Some(p) = self.channels.get(channel) {
            at = at.max(p.fence).max(p.sent + channel_interval);
        }
        if let Some(t) = self.team_pacers.get(team) {
            at = at.max(t.ready_at(now));
        }
        at
    }

    /// The latest fence that holds `scope` back: its budget's, its team's, its channel's.
    fn fence(&self, scope: Scope) -> Instant {
        match scope {
            Scope::Directory => self.directory.fence,
            Scope::Team => self.teams_api.fence,
            Scope::Channel { team, channel } => {
                let own = self.channels.get(channel).map(|p| p.fence);
                let team = self.team_pacers.get(team).map(|p| p.fence);
                self.messages
                    .fence
                    .max(own.unwrap_or(self.messages.fence))
                    .max(team.unwrap_or(self.messages.fence))
            }
        }
    }

    /// Takes the scope's next slot (and its team's): the moment the request leaves.
    fn reserve(&mut self, scope: Scope, channel_interval: Duration) -> Instant {
        let now = Instant::now();
        let own = self.own_ready(scope, channel_interval);
        let at = self.scope_pacer(scope).reserve(now).max(own);
        if let Scope::Channel { team, .. } = scope {
            if let Some(t) = self.team_pacers.get_mut(team) {
                t.reserve(at);
            }
        }
        at
    }

    fn departed(&mut self, scope: Scope) {
        if let Scope::Channel { channel, .. } = scope {
            let now = Instant::now();
            self.channels
                .entry(channel.to_string())
                .or_insert(ChannelPace::new(now))
                .sent = now;
            if self.channels.len() > 4096 {
                // Channels that have not sent for a minute need no spacing any more.
                self.channels.retain(|_, p| {
                    now.duration_since(p.sent) < Duration::from_secs(60) || p.fence > now
                });
            }
        }
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
        self.recent.push_back((now, team.to_string()));
        self.messages.answered_429(now);
        if let Some(p) = self.team_pacers.get_mut(team) {
            p.answered_429(now);
        }
        let team_limit =
            !other_team_429 && (other_team_busy || self.team_pacers.contains_key(team));
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
            let paced = self.team_pacers.get(team).map(|p| p.rate);
            return paced.unwrap_or(self.messages.rate);
        }
        let ceiling = self.messages.rate;
        let first = self.messages.first_answer().unwrap_or(now);
        let history = self.team_seen.get(team).cloned().unwrap_or_default();
        let throttled = self
            .recent
            .iter()
            .filter(|(_, t)| t == team)
            .map(|(at, _)| *at)
            .collect();
        let pacer = self.team_pacers.entry(team.to_string()).or_insert_with(|| {
            let mut p = Pacer::with_history(ceiling, now, history, throttled, first);
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
