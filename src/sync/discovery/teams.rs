//! The teams this run covers: joined ones (every team, for app-only sign-in) and the
//! hosts of the shared channels the technical user is a member of
//! (`/me/teamwork/associatedTeams`), told apart by tenant; filtered by the config,
//! `--team` and `--shard`.

use super::collect;
use crate::config::is_guid;
use crate::graph::models::Team;
use crate::graph::{Graph, GraphError};
use crate::http::Scope;
use crate::sync::scope::{State, Via};

/// Which teams this run covers.
#[derive(Debug, Clone, Default)]
pub struct TeamFilter {
    pub include_private: bool,
    /// Ids or display names (case-insensitive); empty = all.
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    pub shard: Option<Shard>,
    /// App-only sign-in has no `/me`: list every team of the tenant (`GET /teams`).
    pub tenant_wide: bool,
    /// The tenant's GUID when `[microsoft] tenant_id` is one; otherwise learned from the
    /// joined teams. Associated teams of another tenant are told apart by it.
    pub home_tenant: Option<String>,
}

impl TeamFilter {
    /// The config's filter; `--team` (`only`) replaces `[crawl] teams` when given.
    pub fn new(config: &crate::config::Config, only: &[String], shard: Option<Shard>) -> Self {
        TeamFilter {
            include_private: config.crawl.include_private_teams,
            only: if only.is_empty() {
                config.crawl.teams.clone()
            } else {
                only.to_vec()
            },
            exclude: config.crawl.exclude_teams.clone(),
            shard,
            tenant_wide: config.flow == crate::config::Flow::ClientCredentials,
            home_tenant: is_guid(&config.tenant_id).then(|| config.tenant_id.to_lowercase()),
        }
    }
}

/// `--shard I/N`: this process covers the teams whose stable hash is I modulo N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {s:?} must be I/N with 0 <= I < N, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn covers(&self, team_id: &str) -> bool {
        let d = crate::digest::sha256([team_id.to_ascii_lowercase().as_bytes()]);
        let h = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        h % u64::from(self.count) == u64::from(self.index)
    }
}

/// A team discovery found: how it is reached and whether this run covers it.
#[derive(Debug, Clone)]
pub struct TeamRef {
    pub team: Team,
    pub via: Via,
    /// Hosted in another tenant (an associated team of a cross-tenant shared channel).
    pub other_tenant: bool,
    /// `Crawled` (to be looked into) or `Excluded` by `teams` / `exclude_teams` / `--team`.
    pub state: State,
}

/// The teams this shard covers: joined ones (every team, app-only) and, for a delegated
/// user, the associated teams it is not a member of. Visibility is checked later, with
/// the channel lookups.
pub async fn teams(graph: &Graph, filter: &TeamFilter) -> Result<Vec<TeamRef>, GraphError> {
    // App-only tokens have no `/me`: teams are then listed tenant-wide (issue 3).
    let list = if filter.tenant_wide {
        graph.endpoints.all_teams()
    } else {
        graph.endpoints.joined_teams()
    };
    // The two lists load together: each is a round trip before the first channel lookup.
    // The first to fail ends both (the run ends with its error).
    let others = async {
        if filter.tenant_wide {
            Ok(Vec::new())
        } else {
            associated(graph).await
        }
    };
    let (joined, others) = tokio::try_join!(collect::<Team>(graph, list, Scope::Team), others)?;
    let home = filter.home_tenant.clone().or_else(|| usual_tenant(&joined));
    let mut found: Vec<TeamRef> = joined
        .into_iter()
        .map(|team| TeamRef {
            team,
            via: Via::Joined,
            other_tenant: false,
            state: State::Crawled,
        })
        .collect();
    for team in others {
        if found
            .iter()
            .any(|t| t.team.id.eq_ignore_ascii_case(&team.id))
        {
            continue;
        }
        let other_tenant = match (&home, &team.tenant_id) {
            (Some(home), Some(t)) => !t.eq_ignore_ascii_case(home),
            _ => false,
        };
        found.push(TeamRef {
            team,
            via: Via::Associated,
            other_tenant,
            state: State::Crawled,
        });
    }
    Ok(apply_filter(found, filter))
}

/// The associated teams; a Graph that refuses the list (an older cloud) costs the shared
/// channels of teams the user is not a member of, with a warning, not the run.
async fn associated(graph: &Graph) -> Result<Vec<Team>, GraphError> {
    match collect(graph, graph.endpoints.associated_teams(), Scope::Team).await {
        Ok(list) => Ok(list),
        Err(GraphError::Status { status, code, .. }) => {
            tracing::warn!(status, code = %code, "Graph refused the associated teams (/me/teamwork/associatedTeams); shared channels of teams the technical user is not a member of are left out of this run.");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// The tenant most joined teams name: the technical user's own.
fn usual_tenant(teams: &[Team]) -> Option<String> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for t in teams.iter().filter_map(|t| t.tenant_id.as_deref()) {
        *counts.entry(t.to_ascii_lowercase()).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(t, _)| t)
}

/// `--shard` leaves other shards' teams out; `teams`, `exclude_teams` and `--team` mark
/// theirs as excluded (they are reported, not crawled).
fn apply_filter(found: Vec<TeamRef>, filter: &TeamFilter) -> Vec<TeamRef> {
    let matches = |t: &Team, list: &[String]| {
        list.iter().any(|x| {
            x.eq_ignore_ascii_case(&t.id)
                || t.display_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(x))
        })
    };
    for wanted in &filter.only {
        if !found
            .iter()
            .any(|t| matches(&t.team, std::slice::from_ref(wanted)))
        {
            tracing::warn!(team = %wanted, "No accessible team has this id or name; check [crawl] teams / --team and that the technical user is a member.");
        }
    }
    found
        .into_iter()
        .filter(|t| filter.shard.is_none_or(|s| s.covers(&t.team.id)))
        .map(|mut t| {
            let wanted = filter.only.is_empty() || matches(&t.team, &filter.only);
            if !wanted || matches(&t.team, &filter.exclude) {
                t.state = State::Excluded;
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_team_exactly_once() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for n in 0..500 {
            let id = format!("team-{n}");
            assert_eq!(shards.iter().filter(|s| s.covers(&id)).count(), 1);
        }
    }

    #[test]
    fn shard_syntax_is_checked() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("x").is_err());
    }

    fn team(id: &str, name: &str, tenant: &str) -> Team {
        Team {
            id: id.into(),
            display_name: Some(name.into()),
            visibility: None,
            tenant_id: Some(tenant.into()),
        }
    }

    #[test]
    fn filtered_teams_stay_listed_as_excluded_and_the_usual_tenant_is_home() {
        let joined = [team("t1", "Legal", "home"), team("t2", "Sales", "home")];
        assert_eq!(usual_tenant(&joined).as_deref(), Some("home"));
        let found = joined
            .into_iter()
            .map(|team| TeamRef {
                team,
                via: Via::Joined,
                other_tenant: false,
                state: State::Crawled,
            })
            .collect();
        let filter = TeamFilter {
            exclude: vec!["legal".into()],
            ..TeamFilter::default()
        };
        let states: Vec<State> = apply_filter(found, &filter)
            .iter()
            .map(|t| t.state)
            .collect();
        assert_eq!(states, [State::Excluded, State::Crawled]);
    }
}
