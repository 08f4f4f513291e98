//! `doctor`'s Graph checks: `/me`, the teams a run would crawl, and one delta page of one
//! channel a run would crawl, each with the permission to grant when Graph refuses.

use std::sync::Arc;

use serde_json::Value;

use super::{Check, Failed};
use crate::config::Config;
use crate::exit::Code;
use crate::graph::models::Page;
use crate::graph::time::format as graph_time;
use crate::graph::{Graph, GraphError};
use crate::http::Scope;
use crate::secret::redact_url;
use crate::sync::discovery::{self, Found, TeamFilter};
use crate::sync::ChannelKey;

/// Teams looked up at once: doctor is one person waiting, not a crawl.
const DOCTOR_CONCURRENCY: usize = 4;

/// A failed Graph call as a check line: 401/403 is a permission a person must grant.
pub(super) fn graph_failed(e: GraphError, what: &str, permission: &str) -> Failed {
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

/// The teams a run would crawl and their channels, each decided on as a run would
/// (`[crawl]` filters and `exclude_channels` applied).
pub(super) async fn check_teams(config: &Config, graph: &Arc<Graph>) -> Check<(Found, String)> {
    let filter = TeamFilter::new(config, &[], None);
    let teams = discovery::teams(graph, &filter)
        .await
        .map_err(|e| graph_failed(e, "the joined teams", "Team.ReadBasic.All"))?;
    let listed = teams.len();
    let found = discovery::channels(graph, teams, &config.crawl, DOCTOR_CONCURRENCY, None)
        .await
        .map_err(|e| graph_failed(e, "a team's channels", "Channel.ReadBasic.All"))?;
    if found.teams == 0 {
        return Err(Failed::new(
            Code::Auth,
            "the technical user can reach no team to crawl",
            "add the technical user to the teams as a member, or check [crawl] teams, exclude_teams and include_private_teams",
        ));
    }
    let detail = format!(
        "{} of {listed} team(s) to crawl, {} channel(s) to crawl (scope below)",
        found.teams,
        found.channels.len()
    );
    Ok((found, detail))
}

/// One delta GET with `$top=1` in the first channel a run would crawl: the request the
/// crawl makes most, with the permission it needs most. Excluded channels are never
/// asked, here either.
pub(super) async fn check_messages(graph: &Graph, channels: &[ChannelKey]) -> Check<((), String)> {
    let Some(c) = channels.first() else {
        return Err(Failed::new(
            Code::Auth,
            "none of the teams has a channel a run would crawl",
            "add the technical user to a team with channels, or check [crawl] exclude_channels",
        ));
    };
    let since = graph_time(chrono::Utc::now() - chrono::Duration::days(1));
    let url = top_one(&graph.endpoints.delta(&c.team, &c.channel, &since, false));
    let _: Page<Value> = graph
        .get(
            &url,
            Scope::Channel {
                team: &c.team,
                channel: &c.channel,
                left: 0,
            },
        )
        .await
        .map_err(|e| graph_failed(e, "channel messages", "ChannelMessage.Read.All"))?;
    Ok((
        (),
        format!(
            "messages of channel {} (team {}) are readable (one delta page, $top=1)",
            c.channel, c.team
        ),
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
