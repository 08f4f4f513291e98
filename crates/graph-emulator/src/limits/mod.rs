//! Graph's throttling limits as token buckets — per tenant, per team, per channel and per
//! user, each counting a chosen set of routes — answering 429 with the `Retry-After` of the
//! scope that ran dry (or, like some of Graph's 429s, with none), and the accounting a
//! benchmark needs to judge a client: Retry-After violations per scope, the busiest
//! instance of each scope, and the arrival time of every message request.
//!
//! Graph documents 20 requests/s per app per tenant and 1 request/s per channel for channel
//! messages, and "a maximum of 4 requests per second per app ... on a given team or
//! channel" (<https://learn.microsoft.com/graph/throttling-limits#microsoft-teams-service-limits>);
//! unlisted Teams GETs may carry a per-user limit, and a Microsoft moderator wrote that delta
//! and `/replies` share 60 requests/min per app per tenant. Which one binds is not certain,
//! so each scope's rate and routes are knobs ([`Limits`]); a bucket holding one second's
//! worth of tokens models Graph's "short windows".
//!
//! A *violation* is a request for a scope that arrives before the wait the emulator last
//! decided for that scope has ended: the advertised `Retry-After`, or — when the 429 carried
//! none — the bucket's refill, since such a request can only meet another 429. Arrival is
//! taken when the request reaches the server, before the configured latency, so a client
//! that waits exactly the advertised time after the 429 reached it is never counted.

mod scopes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::graph::{throttled_response, Throttle};
use crate::server::Arrival;
use crate::Shared;
pub(crate) use scopes::{Limiter, Rejection, Target, Verdict, IN_FLIGHT};

/// Rates and bursts of [`crate::Emulator::set_limits`]; `None` rate = no limit for that
/// scope, `None` burst = one second's worth (at least one request).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    pub tenant_rps: Option<f64>,
    pub tenant_burst: Option<f64>,
    /// The routes the tenant limit counts (default: the message routes).
    pub tenant_routes: Routes,
    /// Per team, across its channels: every route under `/teams/{id}`.
    pub team_rps: Option<f64>,
    pub team_burst: Option<f64>,
    /// Per channel, on the message routes.
    pub channel_rps: Option<f64>,
    pub channel_burst: Option<f64>,
    /// Per user of the access token (all delegated tokens belong to the technical user).
    pub user_rps: Option<f64>,
    pub user_burst: Option<f64>,
    /// The routes the user limit counts (default: the message routes).
    pub user_routes: Routes,
    /// Share of the 429s sent without `Retry-After` (0 none, 1 all), spread evenly.
    pub omit_retry_after: f64,
}

impl Limits {
    /// Graph's documented limits for channel messages: 20/s per tenant, 1/s per channel.
    pub fn graph() -> Limits {
        Limits {
            tenant_rps: Some(20.0),
            channel_rps: Some(1.0),
            ..Limits::default()
        }
    }

    pub fn is_unlimited(&self) -> bool {
        [
            self.tenant_rps,
            self.team_rps,
            self.channel_rps,
            self.user_rps,
        ]
        .iter()
        .all(Option::is_none)
    }
}

/// Which Graph routes a tenant or user limit counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routes {
    /// `…/messages/delta`, `…/messages` and `…/replies` (Graph's "GET channel message").
    #[default]
    Messages,
    /// Delta and replies only (the shared 60/min a Microsoft moderator described).
    DeltaReplies,
    /// Every Teams GET: joinedTeams, teams, a team, its channels and the message routes.
    Teams,
    /// Every Graph route, the directory and `/me` too.
    All,
}

impl Routes {
    /// The names [`Routes::parse`] accepts, as the command line spells them.
    pub const NAMES: [&'static str; 4] = ["messages", "delta-replies", "teams", "all"];

    pub fn parse(s: &str) -> Option<Routes> {
        match s {
            "messages" => Some(Routes::Messages),
            "delta-replies" => Some(Routes::DeltaReplies),
            "teams" => Some(Routes::Teams),
            "all" => Some(Routes::All),
            _ => None,
        }
    }

    /// Whether `route` (a name of `EmulatorStats::by_route`) counts under this set.
    pub(crate) fn covers(self, route: &str) -> bool {
        let message = matches!(route, "delta" | "messages" | "replies");
        match self {
            Routes::Messages => message,
            Routes::DeltaReplies => matches!(route, "delta" | "replies"),
            Routes::Teams => {
                message || matches!(route, "joinedTeams" | "teams" | "team" | "channels")
            }
            Routes::All => !matches!(route, "token" | "devicecode" | "stats"),
        }
    }
}

/// `Retry-After` in decimal seconds, like Graph's `2.128`.
pub(crate) fn retry_after_header(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The team and channel ids of a Graph path (`/v1.0/teams/{team}/channels/{channel}/…`).
fn ids_of(path: &str) -> (Option<&str>, Option<&str>) {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some("v1.0"), Some("teams"), Some(team)) if !team.is_empty() => {
            let channel = match (segs.next(), segs.next()) {
                (Some("channels"), Some(ch)) if !ch.is_empty() => Some(ch),
                _ => None,
            };
            (Some(team), channel)
        }
        _ => (None, None),
    }
}

/// Middleware in front of the Graph routes, after the token check: enforces the limits and
/// keeps the violation and 429 counts.
pub(crate) async fn enforce(State(app): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match decide(&app, &req) {
        None => next.run(req).await,
        Some(r) => throttled_response(&Throttle {
            remaining: 0,
            status: 429,
            retry_after: r.retry_after.then(|| retry_after_header(r.wait)),
        }),
    }
}

/// `Some(rejection)` when the request must be answered 429.
fn decide(app: &Shared, req: &Request) -> Option<Rejection> {
    let path = req.uri().path();
    let route = crate::server::route_of(path)?;
    let (team, channel) = ids_of(path);
    let arrived = req
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |a| a.0);
    let mut w = app.lock();
    if !w.limiter.active() {
        return None;
    }
    let user = w.tenant.people.users[w.tenant.technical].id.clone();
    w.limiter.in_flight = app.latency() + IN_FLIGHT;
    let target = Target {
        route,
        team,
        channel,
        user: &user,
    };
    let verdict = w.limiter.admit(arrived, &target);
    w.stats.record(route, &verdict);
    verdict.rejected
}

/// The most requests in any `window`, counting arrivals (offsets from the start) at or after
/// `from` only.
pub fn max_in_window(arrivals: &[Duration], window: Duration, from: Duration) -> usize {
    let mut times: Vec<Duration> = arrivals.iter().copied().filter(|t| *t >= from).collect();
    times.sort_unstable();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_decimal_seconds() {
        assert_eq!(retry_after_header(Duration::from_millis(2128)), "2.128");
    }

    #[test]
    fn sliding_window_counts_after_warmup() {
        let ms = Duration::from_millis;
        let arrivals = [
            ms(0),
            ms(10),
            ms(20),
            ms(1500),
            ms(1600),
            ms(2400),
            ms(2550),
        ];
        assert_eq!(max_in_window(&arrivals, ms(1000), ms(0)), 3);
        assert_eq!(max_in_window(&arrivals, ms(1000), ms(1000)), 3);
        assert_eq!(max_in_window(&arrivals, ms(1000), ms(2000)), 2);
    }

    #[test]
    fn paths_name_their_team_and_channel() {
        assert_eq!(
            ids_of("/v1.0/teams/t1/channels/19:x@thread.tacv2/messages/delta"),
            (Some("t1"), Some("19:x@thread.tacv2"))
        );
        assert_eq!(ids_of("/v1.0/teams/t1/channels"), (Some("t1"), None));
        assert_eq!(ids_of("/v1.0/teams/t1"), (Some("t1"), None));
        assert_eq!(ids_of("/v1.0/teams"), (None, None));
        assert_eq!(ids_of("/v1.0/me/joinedTeams"), (None, None));
    }

    #[test]
    fn route_sets_cover_what_they_say() {
        let all = [
            "me",
            "users",
            "joinedTeams",
            "teams",
            "team",
            "channels",
            "delta",
            "messages",
            "replies",
        ];
        let covered =
            |r: Routes| -> Vec<&str> { all.into_iter().filter(|x| r.covers(x)).collect() };
        assert_eq!(covered(Routes::Messages), ["delta", "messages", "replies"]);
        assert_eq!(covered(Routes::DeltaReplies), ["delta", "replies"]);
        assert_eq!(covered(Routes::Teams), &all[2..]);
        assert_eq!(covered(Routes::All), all);
        assert!(!Routes::All.covers("token"));
        for name in Routes::NAMES {
            assert!(Routes::parse(name).is_some(), "{name}");
        }
        assert_eq!(Routes::parse("everything"), None);
    }
}
