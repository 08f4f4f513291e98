//! `doctor`'s Graph checks: `/me`, the teams a run would crawl, and one delta page of one
//! channel, each with the permission to grant when Graph refuses.

use serde_json::Value;

use super::{Check, Failed};
use crate::config::Config;
use crate::exit::Code;
use crate::graph::models::{Channel, Page, Team};
use crate::graph::time::format as graph_time;
use crate::graph::{Graph, GraphError};
use crate::http::Scope;
use crate::secret::redact_url;
use crate::sync::discovery::{self, TeamFilter};

/// A failed Graph call as a check line: 401/403 is a permission a person must grant.
fn graph_failed(e: GraphError, what: &str, permission: &str) -> Failed {
    match e {
        GraphError::Auth(f) => Failed::new(
            f.code,
            f.chain(),
            "sign the technical user in again, as the line says",
        ),
        GraphError::Status {
            status: status @ (401 | 403),
            code,
            ..
        } => Failed::new(
            Code::Auth,
            format!("Graph refused {what} (HTTP {status} {code})"),
            format!("grant {permission} to the app (admin consent), then sign in again"),
        ),
        e @ GraphError::Unavailable { .. } => Failed::new(
            Code::Unavailable,
            format!("cannot reach Graph for {what}: {e}"),
            "check [microsoft] graph_url (or cloud) and the network path from this host: DNS, proxy, firewall",
        ),
        other => Failed::new(
            Code::Unavailable,
            format!("{what}: {other}"),
            "check [microsoft] graph_url points at Microsoft Graph, then try again later",
        ),
    }
}

pub(super) async fn check_me(config: &Config, graph: &Graph) -> Check<((), String)> {
    let me: Value = graph
        .get(&graph.endpoints.me(), Scope::Directory)
        .await
        .map_err(|e| graph_failed(e, "/me", "User.ReadBasic.All"))?;
    let who = me["userPrincipalName"]
        .as_str()
        .unwrap_or("the technical user");
    Ok((
        (),
        format!(
            "{} answers; signed in as {who}",
            redact_url(&config.graph_url)
        ),
    ))
}

pub(super) async fn check_teams(config: &Config, graph: &Graph) -> Check<(Vec<Team>, String)> {
    let filter = TeamFilter::new(config, &[], None);
    let teams = discovery::teams(graph, &filter)
        .await
        .map_err(|e| graph_failed(e, "the joined teams", "Team.ReadBasic.All"))?;
    if teams.is_empty() {
        return Err(Failed::new(
            Code::Auth,
            "the technical user can reach no team to crawl",
            "add the technical user to the teams as a member, or check [crawl] teams and exclude_teams",
        ));
    }
    // Private teams are told apart only later, per team; `run` warns about those it skips.
    let detail = format!(
        "{} joined team(s) match [crawl] teams / exclude_teams",
        teams.len()
    );
    Ok((teams, detail))
}

/// One delta GET with `$top=1` in the first team that has a channel: the request the crawl
/// makes most, with the permission it needs most.
pub(super) async fn check_messages(graph: &Graph, teams: &[Team]) -> Check<((), String)> {
    for team in teams {
        let channels: Vec<Channel> =
            discovery::collect(graph, graph.endpoints.channels(&team.id), Scope::Team)
                .await
                .map_err(|e| graph_failed(e, "a team's channels", "Channel.ReadBasic.All"))?;
        let Some(channel) = channels.first() else {
            continue;
        };
        let since = graph_time(chrono::Utc::now() - chrono::Duration::days(1));
        let url = top_one(&graph.endpoints.delta(&team.id, &channel.id, &since, false));
        let _: Page<Value> = graph
            .get(
                &url,
                Scope::Channel {
                    team: &team.id,
                    channel: &channel.id,
                },
            )
            .await
            .map_err(|e| graph_failed(e, "channel messages", "ChannelMessage.Read.All"))?;
        let name = |n: &Option<String>, id: &str| n.clone().unwrap_or_else(|| id.to_string());
        return Ok((
            (),
            format!(
                "messages of {} / {} are readable (one delta page, $top=1)",
                name(&team.display_name, &team.id),
                name(&channel.display_name, &channel.id),
            ),
        ));
    }
    Err(Failed::new(
        Code::Auth,
        "none of the teams has a channel the technical user can see",
        "add the technical user to a team with channels",
    ))
}

/// The same URL with `$top=1`.
fn top_one(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_string();
    };
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "$top" {
                "1".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.into()
}
