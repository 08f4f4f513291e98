//! Which channel runs when (issue 11). Enough channels run at once to keep the tenant's
//! budget busy although each channel may send only `per_channel_requests_per_second`:
//! [`BACKLOG`] `× requests_per_second / per_channel_requests_per_second` of them, plus one
//! per request in flight for the time spent waiting on Graph and the ingest. Where the
//! tenant's budget binds, the channels in flight share it and each runs under its own
//! rate; the backlog keeps a channel that starts late from being left to run alone, at
//! its own slow rate, after the others are done. What bounds the requests in flight is the
//! limiter's `concurrency`, not the number of channels.
//!
//! The order: the channels that took the most requests last time start first (the
//! longest job first: one channel of 2 000 pages must not start after 500 small ones), the
//! rest interleaved across teams, so a limit of one team shows as such and not as the
//! tenant's. Tasks are started as others finish, so a tenant of 50 000 channels holds only
//! the channels in flight in memory.
//!
//! Where a limit narrower than the tenant binds (a team's, or channels spaced by their own
//! rate), the channels in flight may leave part of the tenant's budget unused while others
//! wait their turn; they would then run at the end, alone, each at its own slow rate. So
//! while the limiter reports spare budget, one more channel is let in each
//! [`SPARE_CHECK`], up to four times the computed number.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{error::TryRecvError, UnboundedReceiver};

use super::channel::{self, ChannelRun};
use super::crawl::Crawl;
use super::report::{Ending, Failure, FailureKind, Summary};
use super::ChannelKey;
use crate::config::Limits;

/// Channels in flight per channel's worth of the tenant's budget (channels that could each
/// use one per-channel rate of it). Fewer leave channels for the end where a narrower
/// limit binds: with 1.5, a tenant of 3 teams × 12 channels under 4/s per team ran its
/// last five channels alone for 15 s (80 % of the ceiling; 94 % with 4). A channel in
/// flight that waits holds no page: pages in memory are bounded by
/// [`Graph::get_page`](crate::graph::Graph::get_page), not by this number.
const BACKLOG: f64 = 4.0;

/// Channels that may be crawled at once for `limits`.
pub fn channels_in_flight(limits: &Limits) -> usize {
    let per_channel = limits.per_channel_requests_per_second.max(0.001);
    let busy = (BACKLOG * limits.requests_per_second / per_channel).ceil();
    (busy as usize)
        .saturating_add(limits.concurrency)
        .clamp(1, 1024)
}

/// Channels waiting to start, in the order they start: most requests last round first
/// (from the stored cursors), then round-robin across teams in the order they were found
/// (a team's first channel, then every team's second, …). Channels arrive while discovery
/// goes on; each takes its place among those still waiting.
pub struct Pending<'h> {
    hints: &'h HashMap<ChannelKey, u32>,
    /// Per team: its place in discovery order and how many of its channels came so far.
    teams: HashMap<String, (usize, usize)>,
    waiting: BTreeMap<(std::cmp::Reverse<u32>, usize, usize), ChannelKey>,
}

impl<'h> Pending<'h> {
    pub fn new(hints: &'h HashMap<ChannelKey, u32>) -> Self {
        Pending {
            hints,
            teams: HashMap::new(),
            waiting: BTreeMap::new(),
        }
    }

    pub fn push(&mut self, channel: ChannelKey) {
        let known = self.teams.len();
        let (team, index) = self.teams.entry(channel.team.clone()).or_insert((known, 0));
        let hint = self.hints.get(&channel).copied().unwrap_or(1);
        self.waiting.insert(
            (std::cmp::Reverse(crate::http::rank(hint)), *index, *team),
            channel,
        );
        *index += 1;
    }

    /// A channel discovery found: counted for the progress report, then queued.
    fn arrived(&mut self, crawl: &Crawl, channel: ChannelKey) {
        crawl.services.progress.add_channels(1);
        self.push(channel);
    }

    pub fn pop(&mut self) -> Option<ChannelKey> {
        self.waiting.pop_first().map(|(_, c)| c)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// How often the scheduler asks the limiter whether another channel could use the budget.
const SPARE_CHECK: Duration = Duration::from_secs(1);

/// Crawls the channels `found` sends (discovery still going on) until it is done and
/// every channel is crawled, at most `in_flight` at once (more while the limiter reports
/// spare budget).
pub(super) async fn crawl_channels(
    crawl: &Arc<Crawl>,
    mut found: UnboundedReceiver<ChannelKey>,
    hints: &HashMap<ChannelKey, u32>,
    mut in_flight: usize,
    summary: &mut Summary,
) {
    let most = in_flight.saturating_mul(4).min(4096);
    let mut pending = Pending::new(hints);
    let mut discovering = true;
    let mut tasks = tokio::task::JoinSet::new();
    let mut places = HashMap::new();
    let mut check = tokio::time::interval(SPARE_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while discovering {
            match found.try_recv() {
                Ok(c) => pending.arrived(crawl, c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => discovering = false,
            }
        }
        while tasks.len() < in_flight {
            let Some(place) = pending.pop() else { break };
            if crawl.run.stopping() {
                summary.add_channel(&ChannelRun::stopped().counts, Ending::Stopped);
                crawl.services.progress.channel_finished();
                continue;
            }
            let task_crawl = crawl.clone();
            let key = place.clone();
            let expected = hints.get(&place).copied().unwrap_or(0);
            let handle =
                tasks.spawn(async move { channel::crawl(&task_crawl, &place, expected).await });
            places.insert(handle.id(), key);
        }
        if tasks.is_empty() && pending.len() == 0 && !discovering {
            break;
        }
        let more = (pending.len() > 0 || discovering) && in_flight < most;
        let done = tokio::select! {
            Some(done) = tasks.join_next_with_id() => done,
            c = found.recv(), if discovering => {
                match c {
                    Some(c) => pending.arrived(crawl, c),
                    None => discovering = false,
                }
                continue;
            }
            _ = check.tick(), if more => {
                if tasks.len() >= in_flight && crawl.services.graph.has_spare() {
                    in_flight += 1;
                }
                continue;
            }
        };
        crawl.services.progress.channel_finished();
        match done {
            Ok((id, run)) => {
                places.remove(&id);
                summary.add_channel(&run.counts, run.ending);
                summary.failures.extend(run.failure);
            }
            Err(e) => {
                let place = places.remove(&e.id());
                tracing::error!(team = ?place.as_ref().map(|p| &p.team), channel = ?place.as_ref().map(|p| &p.channel), "A channel's crawl failed unexpectedly; its cursor stays where it was.");
                summary.add_channel(&Default::default(), Ending::Failed);
                summary.failures.push(Failure {
                    team: place.as_ref().map(|p| p.team.clone()).unwrap_or_default(),
                    channel: place.map(|p| p.channel),
                    kind: FailureKind::Internal,
                    reason: "the channel's crawl panicked (a bug: report it with the log)".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(team: &str, channel: &str) -> ChannelKey {
        ChannelKey {
            team: team.into(),
            channel: channel.into(),
        }
    }

    #[test]
    fn the_longest_channels_start_first_and_teams_interleave() {
        let channels = vec![
            c("a", "1"),
            c("a", "2"),
            c("a", "3"),
            c("b", "1"),
            c("b", "2"),
        ];
        let hints = HashMap::from([(c("a", "3"), 2000)]);
        let mut pending = Pending::new(&hints);
        for channel in channels {
            pending.push(channel);
        }
        let got: Vec<_> = std::iter::from_fn(|| pending.pop()).collect();
        assert_eq!(
            got,
            vec![
                c("a", "3"),
                c("a", "1"),
                c("b", "1"),
                c("a", "2"),
                c("b", "2")
            ]
        );
    }

    #[test]
    fn a_channel_found_later_takes_its_place_among_those_still_waiting() {
        let hints = HashMap::from([(c("c", "1"), 50)]);
        let mut pending = Pending::new(&hints);
        for channel in [c("a", "1"), c("a", "2"), c("b", "1")] {
            pending.push(channel);
        }
        assert_eq!(pending.pop(), Some(c("a", "1")));
        // Team c's list came in meanwhile: its long channel goes next, its second channel
        // with the other teams' second ones.
        pending.push(c("c", "1"));
        pending.push(c("c", "2"));
        let rest: Vec<_> = std::iter::from_fn(|| pending.pop()).collect();
        assert_eq!(
            rest,
            vec![c("c", "1"), c("b", "1"), c("a", "2"), c("c", "2")]
        );
    }

    #[test]
    fn enough_channels_run_to_fill_the_tenant_budget() {
        let limits = Limits {
            requests_per_second: 20.0,
            per_channel_requests_per_second: 1.0,
            concurrency: 8,
            max_retries: 8,
            request_timeout: std::time::Duration::from_secs(60),
            max_response_size: 1,
        };
        assert_eq!(channels_in_flight(&limits), 88);
    }
}
