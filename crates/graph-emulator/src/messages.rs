//! Channel message routes: the newest-first list (`…/messages`), single messages and
//! replies, plus what the delta route shares with them (rendering a root with its inline
//! replies, the `Prefer` header handling).

// Errors here are finished HTTP responses handed straight back to axum; boxing them would
// only add noise to every handler.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::{json, Value};

use crate::graph::{bad_request, find_channel, graph_error, Caller, Params};
use crate::links::Link;
use crate::quirks::Quirks;
use crate::render::{self, encode_component, Flavor};
use crate::tenant::{Channel, Message, Team, Tenant};
use crate::Shared;

/// A root, with its replies inline (newest first) when `$expand=replies`.
#[allow(clippy::too_many_arguments)] // the route's whole context, passed through once
pub(crate) fn root_json(
    app: &Shared,
    t: &Tenant,
    quirks: &Quirks,
    team: &Team,
    ch: &Channel,
    m: &Message,
    expand: bool,
    flavor: Flavor,
) -> Value {
    let mut v = render::message(t, team, ch, &m.id(), m, flavor);
    if !expand {
        return v;
    }
    let limit = app.inline_replies();
    let newest: Vec<&Message> = m.replies.iter().rev().collect();
    let inline: Vec<Value> = newest
        .iter()
        .take(limit)
        .map(|r| render::message(t, team, ch, &m.id(), r, flavor))
        .collect();
    v["replies@odata.count"] = json!(m.replies.len());
    if newest.len() > limit && !quirks.inline_replies_without_next_link {
        let link = Link::Replies {
            channel: ch.id.clone(),
            root: m.id(),
            before: newest[limit - 1].created,
            top: 50,
        };
        v["replies@odata.nextLink"] = json!(format!(
            "{}?$skiptoken={}",
            replies_url(app, team, ch, &m.id()),
            app.links.encode(&link)
        ));
    }
    v["replies"] = json!(inline);
    v
}

fn replies_url(app: &Shared, team: &Team, ch: &Channel, root: &str) -> String {
    format!(
        "{}/v1.0/teams/{}/channels/{}/messages/{root}/replies",
        app.base, team.id, ch.id
    )
}

fn list_context(app: &Shared, team: &Team, ch: &Channel) -> String {
    format!(
        "{}/v1.0/$metadata#teams('{}')/channels('{}')/messages",
        app.base,
        team.id,
        encode_component(&ch.id)
    )
}

pub(crate) async fn list(
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
    let (before, top, expand) = match p.get("$skiptoken") {
        Some(tok) => match app.links.decode(tok) {
            Some(Link::List {
                channel,
                before,
                top,
                expand,
            }) if channel == ch.id => (before, top, expand),
            _ => return bad_request("Invalid skip token."),
        },
        None => match (p.top(20, 50), p.expand_replies()) {
            (Ok(top), Ok(expand)) => (i64::MAX, top, expand),
            (Err(e), _) | (_, Err(e)) => return e,
        },
    };
    let quirks = &w.control.quirks;
    let mut roots: Vec<&Message> = ch.roots.iter().filter(|m| m.created < before).collect();
    roots.sort_by_key(|m| std::cmp::Reverse(m.created));
    let take = quirks.page_size(top, &format!("L|{}|{before}", ch.id));
    let more = roots.len() > take;
    roots.truncate(take);
    let value: Vec<Value> = roots
        .iter()
        .map(|m| root_json(&app, &w.tenant, quirks, tm, ch, m, expand, Flavor::List))
        .collect();
    let mut body = json!({"@odata.context": list_context(&app, tm, ch), "@odata.count": value.len(), "value": value});
    if let (true, Some(last)) = (more, roots.last()) {
        let link = Link::List {
            channel: ch.id.clone(),
            before: last.created,
            top,
            expand,
        };
        let url = format!(
            "{}/v1.0/teams/{}/channels/{}/messages?$skiptoken={}",
            app.base,
            tm.id,
            ch.id,
            app.links.encode(&link)
        );
        body["@odata.nextLink"] = json!(url);
    }
    respond(&headers, body)
}

fn find_root<'a>(ch: &'a Channel, id: &str) -> Result<&'a Message, Response> {
    ch.roots.iter().find(|m| m.id() == id).ok_or_else(|| {
        graph_error(
            axum::http::StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Message {id} not found."),
        )
    })
}

pub(crate) async fn single(
    State(app): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((team, channel, id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q);
    let w = app.lock();
    let found = find_channel(&w.tenant, caller, &team, &channel)
        .and_then(|(tm, ch)| Ok((tm, ch, find_root(ch, &id)?, p.expand_replies()?)));
    let (tm, ch, m, expand) = match found {
        Ok(x) => x,
        Err(e) => return e,
    };
    let quirks = &w.control.quirks;
    let mut v = root_json(&app, &w.tenant, quirks, tm, ch, m, expand, Flavor::List);
    v["@odata.context"] = json!(format!("{}/$entity", list_context(&app, tm, ch)));
    respond(&headers, v)
}

pub(crate) async fn replies(
    State(app): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((team, channel, id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q);
    let w = app.lock();
    let (tm, ch, root) = match find_channel(&w.tenant, caller, &team, &channel)
        .and_then(|(tm, ch)| Ok((tm, ch, find_root(ch, &id)?)))
    {
        Ok(x) => x,
        Err(e) => return e,
    };
    let (before, top) = match p.get("$skiptoken") {
        Some(tok) => match app.links.decode(tok) {
            Some(Link::Replies {
                channel,
                root: r,
                before,
                top,
            }) if channel == ch.id && r == root.id() => (before, top),
            _ => return bad_request("Invalid skip token."),
        },
        None => match p.top(20, 50) {
            Ok(top) => (i64::MAX, top),
            Err(e) => return e,
        },
    };
    let mut page: Vec<&Message> = root
        .replies
        .iter()
        .rev()
        .filter(|r| r.created < before)
        .collect();
    let take = w
        .control
        .quirks
        .page_size(top, &format!("P|{}|{}|{before}", ch.id, root.id()));
    let more = page.len() > take;
    page.truncate(take);
    let value: Vec<Value> = page
        .iter()
        .map(|r| render::message(&w.tenant, tm, ch, &root.id(), r, Flavor::List))
        .collect();
    let context = format!("{}('{}')/replies", list_context(&app, tm, ch), root.id());
    let mut body = json!({"@odata.context": context, "@odata.count": value.len(), "value": value});
    if let (true, Some(last)) = (more, page.last()) {
        let link = Link::Replies {
            channel: ch.id.clone(),
            root: root.id(),
            before: last.created,
            top,
        };
        body["@odata.nextLink"] = json!(format!(
            "{}?$skiptoken={}",
            replies_url(&app, tm, ch, &root.id()),
            app.links.encode(&link)
        ));
    }
    respond(&headers, body)
}

pub(crate) async fn reply(
    State(app): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((team, channel, id, reply)): Path<(String, String, String, String)>,
) -> Response {
    let w = app.lock();
    let found = find_channel(&w.tenant, caller, &team, &channel)
        .and_then(|(tm, ch)| Ok((tm, ch, find_root(ch, &id)?)));
    let (tm, ch, root) = match found {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Some(r) = root.replies.iter().find(|r| r.id() == reply) else {
        return graph_error(
            axum::http::StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Message {reply} not found."),
        );
    };
    let mut v = render::message(&w.tenant, tm, ch, &root.id(), r, Flavor::List);
    v["@odata.context"] = json!(format!(
        "{}('{}')/replies/$entity",
        list_context(&app, tm, ch),
        root.id()
    ));
    respond(&headers, v)
}

/// Without `Prefer: include-unknown-enum-members` Graph reports system events as
/// `messageType: "unknownFutureValue"` (see the README of `fixtures/graph/`), so a client that
/// forgets the header still sees them, just under another name.
pub(crate) fn respond(headers: &HeaderMap, mut body: Value) -> Response {
    let wants_members = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|p| {
                p.trim()
                    .eq_ignore_ascii_case("include-unknown-enum-members")
            })
        });
    if !wants_members {
        hide_evolvable_enums(&mut body);
    }
    Json(body).into_response()
}

fn hide_evolvable_enums(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("messageType")
                .is_some_and(|t| t == "systemEventMessage")
            {
                o.insert("messageType".into(), json!("unknownFutureValue"));
            }
            o.values_mut().for_each(hide_evolvable_enums);
        }
        Value::Array(a) => a.iter_mut().for_each(hide_evolvable_enums),
        _ => {}
    }
}
