//! The channel delta route (`…/messages/delta`).
//!
//! Delta follows Graph's round model: a round (the initial request, or a request with a
//! `$deltatoken`) snapshots the channel's change counter; its pages return the roots changed
//! since the previous round up to that snapshot, oldest change first, and the last page carries
//! the `@odata.deltaLink` for the next round. See `tenant::Message::seq`. With
//! `Quirks::live_delta_rounds` there is no snapshot: each page reads the channel as it is,
//! so a root that changes mid-round comes back on a later page.

// Errors here are finished HTTP responses handed straight back to axum; boxing them would
// only add noise to every handler.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use crate::graph::{bad_request, find_channel, graph_error, Caller, Params};
use crate::links::{DeltaCursor, Expiry, Link};
use crate::messages::{respond, root_json};
use crate::prng::mix_str;
use crate::quirks::Quirks;
use crate::render::Flavor;
use crate::tenant::{Channel, Message, Team, Tenant};
use crate::Shared;

/// Delta reaches back about 8 months; older roots are only visible through the list.
const DELTA_WINDOW_MS: i64 = 240 * 86_400_000;

/// The 400 Graph answers for a delta/skip token it does not accept.
fn bad_token() -> Response {
    bad_request("Parameter 'DeltaToken' not supported for this request.")
}

/// A token Graph does not take: expired ones the way the expiry asked, others as bad.
fn refused(app: &Shared, token: &str) -> Response {
    match app.links.expired(token) {
        Some(Expiry::SyncStateNotFound) => graph_error(
            StatusCode::BAD_REQUEST,
            "syncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
        ),
        Some(Expiry::ResyncRequired) => graph_error(
            StatusCode::GONE,
            "resyncRequired",
            "Resync required. Replace any local items with the server's version.",
        ),
        _ => bad_token(),
    }
}

pub(crate) async fn delta(
    State(app): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((team, channel)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q);
    let w = app.lock();
    let (tm, ch) = match find_channel(&w.tenant, caller, &team, &channel) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let quirks = &w.control.quirks;
    let opening = p.get("$skiptoken").is_none() && p.get("$deltatoken").is_none();
    if opening && quirks.empty_channel_delta_fails && ch.roots.is_empty() {
        return respond(&headers, dead_opener(&app, tm, ch));
    }
    match round_cursor(&app, ch, &p) {
        Ok(c) => respond(&headers, delta_page(&app, &w.tenant, quirks, tm, ch, c)),
        Err(e) => e,
    }
}

/// An empty channel's first page: nothing, and a nextLink Graph then refuses (the
/// reported behaviour behind `error-400-delta-token-not-supported.json`).
fn dead_opener(app: &Shared, team: &Team, ch: &Channel) -> Value {
    let token = app.links.encode(&Link::Dead {
        channel: ch.id.clone(),
    });
    json!({
        "@odata.context": format!("{}/v1.0/$metadata#Collection(chatMessage)", app.base),
        "@odata.nextLink": format!("{}?$skiptoken={token}", delta_base(app, team, ch)),
        "value": [],
    })
}

fn delta_base(app: &Shared, team: &Team, ch: &Channel) -> String {
    format!(
        "{}/v1.0/teams/{}/channels/{}/messages/delta",
        app.base, team.id, ch.id
    )
}

fn round_cursor(app: &Shared, ch: &Channel, p: &Params) -> Result<DeltaCursor, Response> {
    if let Some(tok) = p.get("$skiptoken") {
        return match app.links.decode(tok) {
            Some(Link::Delta(c)) if c.channel == ch.id => Ok(c),
            Some(_) => Err(bad_token()),
            None => Err(refused(app, tok)),
        };
    }
    if let Some(tok) = p.get("$deltatoken") {
        return match app.links.decode(tok) {
            Some(Link::Round {
                channel,
                upper,
                top,
                expand,
            }) if channel == ch.id => Ok(DeltaCursor {
                channel,
                lower: upper,
                upper: ch.seq,
                after: upper,
                top,
                expand,
                since: None,
                first: true,
            }),
            Some(_) => Err(bad_token()),
            None => Err(refused(app, tok)),
        };
    }
    let since = match p.get("$filter") {
        None => None,
        Some(f) => Some(modified_filter(f).ok_or_else(|| bad_request("Invalid filter clause: only lastModifiedDateTime gt <DateTimeOffset> is supported."))?),
    };
    Ok(DeltaCursor {
        channel: ch.id.clone(),
        lower: 0,
        upper: ch.seq,
        after: 0,
        top: p.top(20, 50)?,
        expand: p.expand_replies()?,
        since,
        first: true,
    })
}

/// `lastModifiedDateTime gt 2024-01-01T00:00:00Z` → epoch ms. A `+` of an offset that arrived
/// unencoded turns into a space; it is put back.
fn modified_filter(f: &str) -> Option<i64> {
    let rest = f
        .trim()
        .strip_prefix("lastModifiedDateTime")?
        .trim_start()
        .strip_prefix("gt")?
        .trim();
    let parsed = chrono::DateTime::parse_from_rfc3339(rest)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&rest.replace(' ', "+")));
    parsed.ok().map(|t| t.timestamp_millis())
}

fn delta_page(
    app: &Shared,
    t: &Tenant,
    quirks: &Quirks,
    team: &Team,
    ch: &Channel,
    c: DeltaCursor,
) -> Value {
    let base = delta_base(app, team, ch);
    let mut body =
        json!({"@odata.context": format!("{}/v1.0/$metadata#Collection(chatMessage)", app.base)});
    // Real Graph sometimes opens a round with an empty page that still has a nextLink; do it
    // on about every fifth round so clients that stop at an empty page get caught.
    if c.first && mix_str(&format!("{}|{}", c.channel, c.lower)) % 5 == 2 {
        app.delta_empty_openers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let next = DeltaCursor { first: false, ..c };
        body["@odata.nextLink"] = json!(format!(
            "{base}?$skiptoken={}",
            app.links.encode(&Link::Delta(next))
        ));
        body["value"] = json!([]);
        return body;
    }
    let horizon = chrono::Utc::now().timestamp_millis() - DELTA_WINDOW_MS;
    let bumps = app.opts.reply_bumps_root;
    let upper = if quirks.live_delta_rounds {
        ch.seq
    } else {
        c.upper
    };
    // Each root at its place in this round: its position now, or (snapshot rounds) the one
    // it held when the round began, if it changed since.
    let place = |m: &Message| -> Option<u64> {
        let within = |s: &u64| *s > c.lower && *s <= upper;
        if within(&m.seq) {
            return Some(m.seq);
        }
        m.past_seqs.iter().rev().copied().find(|s| within(s))
    };
    let mut items: Vec<(u64, &Message)> = ch
        .roots
        .iter()
        .filter(|m| m.created >= horizon)
        .filter_map(|m| place(m).map(|p| (p, m)))
        .filter(|(p, _)| *p > c.after)
        .filter(|(_, m)| {
            let changed = if bumps { m.activity } else { m.modified };
            c.since.is_none_or(|s| changed.max(m.shown) > s)
        })
        .collect();
    items.sort_by_key(|(p, _)| *p);
    let take = quirks.page_size(c.top, &format!("{}|{}|{}", c.channel, c.lower, c.after));
    let more = items.len() > take;
    items.truncate(take);
    let value: Vec<Value> = items
        .iter()
        .map(|(_, m)| root_json(app, t, quirks, team, ch, m, c.expand, Flavor::Delta))
        .collect();
    body["value"] = json!(value);
    match (more, items.last()) {
        (true, Some((last, _))) => {
            let next = DeltaCursor {
                after: *last,
                first: false,
                ..c
            };
            body["@odata.nextLink"] = json!(format!(
                "{base}?$skiptoken={}",
                app.links.encode(&Link::Delta(next))
            ));
        }
        _ => {
            let round = Link::Round {
                channel: c.channel,
                upper,
                top: c.top,
                expand: c.expand,
            };
            body["@odata.deltaLink"] =
                json!(format!("{base}?$deltatoken={}", app.links.encode(&round)));
        }
    }
    body
}
