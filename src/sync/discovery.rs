//! Who is who and where to look: the users map (id → mail), the teams the technical user
//! can reach (filtered by the config, `--team` and `--shard`) and their channels.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::report::{Failure, FailureKind};
use super::ChannelRef;
use crate::graph::models::{Channel, Page, Team, User};
use crate::graph::{Graph, GraphError};
use crate::http::Scope;
use crate::transform::Directory;

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

/// Follows `@odata.nextLink` to the end of a collection.
pub async fn collect<T: serde::de::DeserializeOwned>(
    graph: &Graph,
    first: String,
    scope: Scope<'_>,
) -> Result<Vec<T>, GraphError> {
    let mut out = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next {
        let page: Page<T> = graph.get(&url, scope).await?;
        out.extend(page.value);
        next = page.next_link;
    }
    Ok(out)
}

pub async fn directory(graph: &Graph) -> Result<Directory, GraphError> {
    let mut dir = Directory::default();
    let mut next = Some(graph.endpoints.users());
    while let Some(url) = next {
        let page: Page<User> = graph.get(&url, Scope::Directory).await?;
        for u in &page.value {
            if let Some(mail) = u.mail.as_deref().filter(|m| !m.is_empty()) {
                dir.insert(&u.id, mail);
            }
        }
        next = page.next_link;
    }
    Ok(dir)
}

/// The joined teams this run covers by id, name and shard. Visibility is checked later,
/// with the channel lookups.
pub async fn teams(graph: &Graph, filter: &TeamFilter) -> Result<Vec<Team>, GraphError> {
    // App-only tokens have no `/me`: teams are then listed tenant-wide (issue 3).
    let list = if filter.tenant_wide {
        graph.endpoints.all_teams()
    } else {
        graph.endpoints.joined_teams()
    };
    let joined: Vec<Team> = collect(graph, list, Scope::Team).await?;
    let matches = |t: &Team, list: &[String]| {
        list.iter().any(|x| {
            x.eq_ignore_ascii_case(&t.id)
                || t.display_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(x))
        })
    };
    for wanted in &filter.only {
        if !joined
            .iter()
            .any(|t| matches(t, std::slice::from_ref(wanted)))
        {
            tracing::warn!(team = %wanted, "No accessible team has this id or name; check [crawl] teams / --team and that the technical user is a member.");
        }
    }
    Ok(joined
        .into_iter()
        .filter(|team| filter.only.is_empty() || matches(team, &filter.only))
        .filter(|team| !matches(team, &filter.exclude))
        .filter(|team| filter.shard.is_none_or(|s| s.covers(&team.id)))
        .collect())
}

/// One team's channels; `None` for a private team when those are left out.
async fn team_channels(
    graph: &Graph,
    team: &Team,
    include_private: bool,
) -> Result<Option<Vec<Channel>>, GraphError> {
    if !include_private {
        // joinedTeams leaves `visibility` null; the team itself has it.
        let full: Team = graph
            .get(&graph.endpoints.team(&team.id), Scope::Team)
            .await?;
        if full
            .visibility
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("private"))
        {
            tracing::debug!(team = %team.id, "Private team left out; set [crawl] include_private_teams = true to crawl it.");
            return Ok(None);
        }
    }
    collect(graph, graph.endpoints.channels(&team.id), Scope::Team)
        .await
        .map(Some)
}

/// What discovery found: the teams crawled, their channels, and the teams that failed.
pub struct Found {
    pub teams: u64,
    pub channels: Vec<ChannelRef>,
    pub failures: Vec<Failure>,
}

/// The channels of `teams`, looked up `concurrency` teams at a time. Teams Graph refuses
/// (403/404) are recorded as failures and left out, and so is a lookup that panicked (a
/// bug, but not one that may hide a team silently).
pub async fn channels(
    graph: &Arc<Graph>,
    teams: Vec<Team>,
    include_private: bool,
    concurrency: usize,
) -> Result<Found, GraphError> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut ids = std::collections::HashMap::new();
    for team in teams {
        let graph = graph.clone();
        let permits = permits.clone();
        let id = team.id.clone();
        let handle = tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let found = team_channels(&graph, &team, include_private).await;
            (team, found)
        });
        ids.insert(handle.id(), id);
    }
    let mut found = Found {
        teams: 0,
        channels: Vec::new(),
        failures: Vec::new(),
    };
    while let Some(done) = tasks.join_next_with_id().await {
        let (team, listed) = match done {
            Ok((_, x)) => x,
            Err(e) => {
                let team = ids.remove(&e.id()).unwrap_or_default();
                tracing::error!(team = %team, "The channel lookup of a team failed unexpectedly; it is left out of this run.");
                found.failures.push(Failure {
                    team,
                    channel: None,
                    kind: FailureKind::Internal,
                    reason:
                        "the channel lookup panicked or was aborted (a bug: report it with the log)"
                            .into(),
                });
                continue;
            }
        };
        match listed {
            Ok(Some(list)) => {
                found.teams += 1;
                found.channels.extend(list.into_iter().map(|c| ChannelRef {
                    team: team.id.clone(),
                    channel: c.id,
                }));
            }
            Ok(None) => {}
            Err(GraphError::Status { status, code, .. }) => {
                found.failures.push(team_failure(&team.id, status, &code))
            }
            Err(e) => return Err(e),
        }
    }
    // Stable order: the same channels start first every run.
    found
        .channels
        .sort_by(|a, b| (&a.team, &a.channel).cmp(&(&b.team, &b.channel)));
    Ok(found)
}

pub fn team_failure(team: &str, status: u16, code: &str) -> Failure {
    tracing::warn!(team = %team, status, code = %code, "Graph refused the team; it is left out of this run.");
    Failure {
        team: team.to_string(),
        channel: None,
        kind: FailureKind::GraphRefused,
        reason: format!("Graph answered {status} {code}"),
    }
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
}
