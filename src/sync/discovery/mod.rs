//! Who is who and where to look: the users map (id → mail, and the people `[privacy]`
//! leaves out), the teams the technical user can reach ([`teams`]) and their channels,
//! each decided on ([`super::scope`]) before any message is requested.

mod teams;

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Semaphore;

pub use teams::{teams, Shard, TeamFilter, TeamRef};

use super::report::{Failure, FailureKind};
use super::scope::{self, Kind, Scope as Coverage, State, Via};
use super::ChannelKey;
use crate::config::{Crawl as CrawlConfig, PersonEntry};
use crate::graph::models::{Channel, Page, Team, User};
use crate::graph::{Graph, GraphError, Links};
use crate::http::Scope;
use crate::transform::{Directory, People, Resolver, UserRecord};

/// Follows `@odata.nextLink` to the end of a collection.
pub async fn collect<T: serde::de::DeserializeOwned>(
    graph: &Graph,
    first: String,
    scope: Scope<'_>,
) -> Result<Vec<T>, GraphError> {
    let mut out = Vec::new();
    let mut links = Links::starting_at(&first);
    let mut next = Some(first);
    while let Some(url) = next {
        let page: Page<T> = graph.get(&url, scope).await?;
        out.extend(page.value);
        next = follow(graph, &mut links, page.next_link)?;
    }
    Ok(out)
}

/// The next page's link, if there is one and it may be followed (the Graph host, never a
/// link this paging already followed: a hostile answer cannot loop).
fn follow(
    graph: &Graph,
    links: &mut Links,
    next: Option<String>,
) -> Result<Option<String>, GraphError> {
    next.map(|link| links.next(&graph.endpoints, link, "@odata.nextLink"))
        .transpose()
}

/// The users map, with the opt-out entries (and `forget`'s person) resolved on the way.
pub struct Loaded {
    pub directory: Directory,
    /// Opt-out entries that matched no user (counted, never named).
    pub unmatched: usize,
}

pub async fn directory(
    graph: &Graph,
    excluded: &[PersonEntry],
    target: &[PersonEntry],
) -> Result<Loaded, GraphError> {
    let mut dir = Directory::default();
    let mut optouts = Resolver::new(excluded);
    let mut person = Resolver::new(target);
    let extra = !excluded.is_empty() || !target.is_empty();
    let first = graph.endpoints.users(extra);
    let mut links = Links::starting_at(&first);
    let mut next = Some(first);
    while let Some(url) = next {
        let page: Page<User> = graph.get(&url, Scope::Directory).await?;
        for u in &page.value {
            if let Some(mail) = u.mail.as_deref().filter(|m| !m.is_empty()) {
                dir.insert(&u.id, mail);
            }
            let record = UserRecord {
                id: &u.id,
                mail: u.mail.as_deref(),
                upn: u.user_principal_name.as_deref(),
                display_name: u.display_name.as_deref(),
                proxy_addresses: &u.proxy_addresses,
            };
            optouts.user(&record);
            person.user(&record);
        }
        next = follow(graph, &mut links, page.next_link)?;
    }
    let (mut people, unmatched) = optouts.finish();
    let (target, _) = person.finish();
    let target_opted_out = people.covers(&target);
    log_people(&people, unmatched);
    if !target.is_empty() && !target_opted_out {
        tracing::warn!("The person to forget is not in [privacy] exclude_people or exclude_people_file: later runs forward their new messages again. Add them there (README, \"Privacy controls\").");
    }
    // What `forget` sends again must leave the person out, opted out or not yet.
    people.absorb(&target);
    dir.excluded = people;
    dir.target = target;
    Ok(Loaded {
        directory: dir,
        unmatched,
    })
}

/// One team's lookups: its visibility and name where needed, then its channels.
enum Lookup {
    /// A private team left out (`include_private_teams = false`).
    Private,
    Channels {
        name: Option<String>,
        list: Vec<Channel>,
    },
}

async fn team_channels(
    graph: &Graph,
    t: &TeamRef,
    config: &CrawlConfig,
) -> Result<Lookup, GraphError> {
    let team = &t.team;
    let needs_name =
        team.display_name.is_none() && config.exclude_channels.iter().any(|p| p.needs_team_name());
    let mut name = team.display_name.clone();
    // An associated team is not ours to look at: only its shared channels are.
    if t.via == Via::Joined && (!config.include_private_teams || needs_name) {
        // joinedTeams leaves `visibility` null; the team itself has it.
        let full: Team = graph
            .get(&graph.endpoints.team(&team.id), Scope::Team)
            .await?;
        let private = full
            .visibility
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("private"));
        if private && !config.include_private_teams {
            tracing::debug!(team = %team.id, "Private team left out; set [crawl] include_private_teams = true to crawl it.");
            return Ok(Lookup::Private);
        }
        name = name.or(full.display_name);
    }
    let list = collect(graph, graph.endpoints.channels(&team.id), Scope::Team).await?;
    Ok(Lookup::Channels { name, list })
}

/// What discovery found: the teams crawled, their channels, the teams that failed, and
/// every team and channel with what became of it.
pub struct Found {
    pub teams: u64,
    pub channels: Vec<ChannelKey>,
    pub failures: Vec<Failure>,
    pub scope: Coverage,
    /// The channels `exclude_channels` matched, by name, for `doctor` (never stored).
    pub excluded: Vec<Excluded>,
}

/// A channel an `exclude_channels` entry matched.
#[derive(Debug, Clone)]
pub struct Excluded {
    /// The entry as written.
    pub pattern: String,
    /// `Team name / Channel name` (ids where Graph gave no name).
    pub name: String,
}

/// The channels of `teams`, looked up `concurrency` teams at a time. Teams Graph refuses
/// (403/404) are recorded as failures and left out, and so is a lookup that panicked (a
/// bug, but not one that may hide a team silently).
///
/// With `early`, the channels to crawl go there as their team's lookup comes back (the
/// crawl starts while other teams are still looked up) instead of into
/// [`Found::channels`] — all but shared channels, which can show under two teams and are
/// kept for the end, when it is settled under which one each is crawled.
pub async fn channels(
    graph: &Arc<Graph>,
    teams: Vec<TeamRef>,
    config: &CrawlConfig,
    concurrency: usize,
    early: Option<&UnboundedSender<ChannelKey>>,
) -> Result<Found, GraphError> {
    let mut found = Found {
        teams: 0,
        channels: Vec::new(),
        failures: Vec::new(),
        scope: Coverage::default(),
        excluded: Vec::new(),
    };
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut ids = std::collections::HashMap::new();
    for t in teams {
        if t.state != State::Crawled {
            found.scope.team(&t.team.id, t.via, t.state);
            continue;
        }
        let graph = graph.clone();
        let permits = permits.clone();
        let config = config.clone();
        let id = (t.team.id.clone(), t.via);
        let handle = tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let looked = team_channels(&graph, &t, &config).await;
            (t, looked)
        });
        ids.insert(handle.id(), id);
    }
    while let Some(done) = tasks.join_next_with_id().await {
        let (t, looked) = match done {
            Ok((_, x)) => x,
            Err(e) => {
                let (team, via) = ids.remove(&e.id()).unwrap_or((String::new(), Via::Joined));
                tracing::error!(team = %team, "The channel lookup of a team failed unexpectedly; it is left out of this run.");
                found.scope.team(&team, via, State::Unreachable);
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
        match looked {
            Ok(Lookup::Channels { name, list }) => {
                add_team(&mut found, &t, name, list, config, early)
            }
            Ok(Lookup::Private) => found.scope.team(&t.team.id, t.via, State::Excluded),
            Err(GraphError::Status { status, code, .. }) => {
                found.scope.team(&t.team.id, t.via, State::Unreachable);
                found.failures.push(team_failure(&t.team.id, status, &code))
            }
            Err(e) => return Err(e),
        }
    }
    settle_order(&mut found);
    Ok(found)
}

/// Records a team and decides on each of its channels.
fn add_team(
    found: &mut Found,
    t: &TeamRef,
    name: Option<String>,
    list: Vec<Channel>,
    config: &CrawlConfig,
    early: Option<&UnboundedSender<ChannelKey>>,
) {
    let team = &t.team.id;
    let team_state = if t.other_tenant && !config.include_cross_tenant_channels {
        State::OtherTenant
    } else {
        State::Crawled
    };
    found.scope.team(team, t.via, team_state);
    if team_state == State::Crawled {
        found.teams += 1;
    }
    for c in list {
        let kind = Kind::of(&c);
        // Through an associated team only its shared channels are ours.
        if t.via == Via::Associated && kind != Kind::Shared {
            continue;
        }
        let state = scope::decide(config, team, name.as_deref(), &c, t.other_tenant);
        found.scope.channel(team, &c.id, t.via, kind, state);
        if state == State::Excluded {
            found
                .excluded
                .push(excluded(config, team, name.as_deref(), &c));
        }
        if state == State::Crawled {
            let key = ChannelKey {
                team: team.clone(),
                channel: c.id,
            };
            match early {
                // The scheduler reads until discovery ends: a send fails only once the run
                // is over anyway.
                Some(tx) if kind != Kind::Shared => drop(tx.send(key)),
                _ => found.channels.push(key),
            }
        }
    }
}

fn excluded(config: &CrawlConfig, team: &str, name: Option<&str>, c: &Channel) -> Excluded {
    let channel_name = c.display_name.as_deref();
    let pattern = config
        .excluded_by(&crate::config::ChannelName {
            team_id: team,
            team_name: name,
            channel_id: &c.id,
            channel_name,
        })
        .map(|p| p.raw.clone())
        .unwrap_or_default();
    Excluded {
        pattern,
        name: format!(
            "{} / {}",
            name.unwrap_or(team),
            channel_name.unwrap_or(&c.id)
        ),
    }
}

/// A stable order (the same channels start first every run), each channel once: a shared
/// channel is listed under its host team, and anywhere else it shows up is dropped.
fn settle_order(found: &mut Found) {
    found
        .channels
        .sort_by(|a, b| (&a.team, &a.channel).cmp(&(&b.team, &b.channel)));
    let mut seen = std::collections::HashSet::new();
    let shared: std::collections::HashSet<&str> = found
        .scope
        .entries
        .iter()
        .filter(|e| e.kind == Some(Kind::Shared))
        .filter_map(|e| e.channel.as_deref())
        .collect();
    let mut keep = Vec::with_capacity(found.channels.len());
    for c in found.channels.drain(..) {
        if !shared.contains(c.channel.as_str()) || seen.insert(c.channel.clone()) {
            keep.push(c);
        }
    }
    found.channels = keep;
    let excluded = found.scope.coverage().channels_in("excluded");
    if excluded > 0 {
        tracing::info!(
            channels = excluded,
            "Channels left out by [crawl] exclude_channels; they get no request."
        );
    }
}

/// How many people the opt-outs resolved to, and how many entries matched no one
/// (counts only: the entries and their matches are never logged).
fn log_people(people: &People, unmatched: usize) {
    if people.is_empty() && unmatched == 0 {
        return;
    }
    tracing::info!(
        people = people.len(),
        "Opt-outs resolved through the directory; their messages, mentions and names are left out."
    );
    if unmatched > 0 {
        tracing::warn!(entries = unmatched, "Opt-out entries match no one in the directory (a departed person, a typo, or a mail that changed: write the object id, or grant User.Read.All so former mails are read); object ids among them still apply.");
    }
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
