//! What a run covers, and why: every team and channel discovery found, by kind (teams
//! joined or associated through a shared channel; channels standard, private or shared),
//! with what became of it — crawled, excluded by the configuration, unreachable (Graph
//! answered 403/404) or hosted in another tenant. The counts go into the run summary
//! ([`Coverage`]); the list, ids only, into the state store for `status` ([`Scope`]).
//!
//! Decided here, before any message request: a channel `[crawl] exclude_channels` names
//! never gets one, and neither does a shared channel hosted in another tenant unless
//! `[crawl] include_cross_tenant_channels` is set (the directory cannot map its people).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::report::{Failure, FailureKind, Summary};
use crate::config::{ChannelName, Crawl as CrawlConfig};
use crate::exit::Result;
use crate::graph::models::Channel;
use crate::state::Store;

/// Where the last run's scope is stored (`status` reads it).
pub const SCOPE_KEY: &str = "scope";

/// How the technical user reaches a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A member (`/me/joinedTeams`; every team for app-only sign-in).
    Joined,
    /// Only through shared channels it hosts (`/me/teamwork/associatedTeams`).
    Associated,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Joined => "joined",
            Via::Associated => "associated",
        }
    }
}

/// A channel's `membershipType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Standard,
    Private,
    Shared,
}

impl Kind {
    /// Graph's value; an unknown one (`unknownFutureValue`) counts as standard.
    pub fn of(channel: &Channel) -> Kind {
        match channel.membership_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("private") => Kind::Private,
            Some(t) if t.eq_ignore_ascii_case("shared") => Kind::Shared,
            _ => Kind::Standard,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Standard => "standard",
            Kind::Private => "private",
            Kind::Shared => "shared",
        }
    }
}

/// What became of a team or channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Crawled,
    /// Left out by the configuration: `exclude_channels`, `teams`, `exclude_teams`,
    /// `include_private_teams` (or `--team`).
    Excluded,
    /// Graph refused it (403/404): membership removed, team or channel deleted.
    Unreachable,
    /// Hosted in another tenant, `include_cross_tenant_channels` not set.
    OtherTenant,
}

const STATES: [&str; 4] = ["crawled", "excluded", "unreachable", "other_tenant"];

impl State {
    fn name(self) -> &'static str {
        STATES[self as usize]
    }
}

/// One team (`channel` absent) or channel as discovery found it: ids only, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub team: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub via: Via,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    pub state: State,
}

/// Counts by kind and state, every combination present (zeros too) so dashboards see a
/// stable set: `{"teams": {"joined": {"crawled": 3, …}, …}, "channels": {"shared": …}}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Coverage {
    pub teams: BTreeMap<String, BTreeMap<String, u64>>,
    pub channels: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Coverage {
    fn zeros(kinds: &[&str]) -> BTreeMap<String, BTreeMap<String, u64>> {
        kinds
            .iter()
            .map(|k| {
                let states = STATES.iter().map(|s| (s.to_string(), 0)).collect();
                (k.to_string(), states)
            })
            .collect()
    }

    /// Channels in `state`, whatever their kind.
    pub fn channels_in(&self, state: &str) -> u64 {
        self.channels.values().filter_map(|s| s.get(state)).sum()
    }
}

/// Everything discovery found, in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scope {
    pub entries: Vec<Entry>,
}

impl Scope {
    pub fn team(&mut self, team: &str, via: Via, state: State) {
        self.entries.push(Entry {
            team: team.to_string(),
            channel: None,
            via,
            kind: None,
            state,
        });
    }

    pub fn channel(&mut self, team: &str, channel: &str, via: Via, kind: Kind, state: State) {
        self.entries.push(Entry {
            team: team.to_string(),
            channel: Some(channel.to_string()),
            via,
            kind: Some(kind),
            state,
        });
    }

    /// After the crawl: channels Graph refused with 403/404 become unreachable.
    pub fn settle(&mut self, failures: &[Failure]) {
        for e in self
            .entries
            .iter_mut()
            .filter(|e| e.state == State::Crawled)
        {
            let refused = failures
                .iter()
                .filter(|f| f.team == e.team && f.channel == e.channel)
                .any(is_unreachable);
            if refused {
                e.state = State::Unreachable;
            }
        }
    }

    pub fn coverage(&self) -> Coverage {
        let mut c = Coverage {
            teams: Coverage::zeros(&["joined", "associated"]),
            channels: Coverage::zeros(&["standard", "private", "shared"]),
        };
        for e in &self.entries {
            let (table, kind) = match e.kind {
                Some(k) => (&mut c.channels, k.name()),
                None => (&mut c.teams, e.via.name()),
            };
            if let Some(n) = table.get_mut(kind).and_then(|s| s.get_mut(e.state.name())) {
                *n += 1;
            }
        }
        c
    }
}

/// A failure that means "Graph refused": 403 or 404 (`GraphError::Status` reads
/// "Graph answered 403 …").
fn is_unreachable(f: &Failure) -> bool {
    f.kind == FailureKind::GraphRefused
        && ["Graph answered 403", "Graph answered 404"]
            .iter()
            .any(|p| f.reason.starts_with(p))
}

/// After the crawl: the refused channels settled, the counts into the summary, the list
/// (ids only) into the store for `status`.
pub fn record(store: &Store, scope: &mut Scope, summary: &mut Summary) -> Result<()> {
    scope.settle(&summary.failures);
    summary.coverage = scope.coverage();
    store.set_meta(SCOPE_KEY, scope)
}

/// What to do with one listed channel of a team this run covers.
pub fn decide(
    config: &CrawlConfig,
    team_id: &str,
    team_name: Option<&str>,
    channel: &Channel,
    other_tenant: bool,
) -> State {
    let name = ChannelName {
        team_id,
        team_name,
        channel_id: &channel.id,
        channel_name: channel.display_name.as_deref(),
    };
    if config.excluded_by(&name).is_some() {
        State::Excluded
    } else if other_tenant && !config.include_cross_tenant_channels {
        State::OtherTenant
    } else {
        State::Crawled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphError;

    #[test]
    fn refusals_are_read_from_the_error_graph_gives() {
        for (status, unreachable) in [(403, true), (404, true), (400, false)] {
            let e = GraphError::Status {
                status,
                code: "x".into(),
                message: String::new(),
            };
            let f = Failure {
                team: "t".into(),
                channel: Some("c".into()),
                kind: FailureKind::GraphRefused,
                reason: e.to_string(),
            };
            assert_eq!(is_unreachable(&f), unreachable, "{status}");
        }
    }

    #[test]
    fn coverage_counts_every_kind_and_state() {
        let mut s = Scope::default();
        s.team("t1", Via::Joined, State::Crawled);
        s.team("t2", Via::Associated, State::Crawled);
        s.channel("t1", "c1", Via::Joined, Kind::Standard, State::Crawled);
        s.channel("t1", "c2", Via::Joined, Kind::Private, State::Excluded);
        s.channel("t2", "c3", Via::Associated, Kind::Shared, State::Crawled);
        let f = Failure {
            team: "t2".into(),
            channel: Some("c3".into()),
            kind: FailureKind::GraphRefused,
            reason: "Graph answered 404 NotFound".into(),
        };
        s.settle(&[f]);
        let c = s.coverage();
        assert_eq!(c.teams["associated"]["crawled"], 1);
        assert_eq!(c.channels["private"]["excluded"], 1);
        assert_eq!(c.channels["shared"]["unreachable"], 1);
        assert_eq!(c.channels["shared"]["other_tenant"], 0);
        assert_eq!(c.channels_in("crawled"), 1);
        let v = serde_json::to_value(&s.entries[4]).unwrap();
        assert_eq!(v["state"], "unreachable");
        assert_eq!(v["kind"], "shared");
        assert_eq!(v["via"], "associated");
    }
}
