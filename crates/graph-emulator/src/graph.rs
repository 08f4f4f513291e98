//! Graph directory and discovery routes (`/me`, `/users`, `/me/joinedTeams`, `/teams`,
//! `/teams/{id}`, `/teams/{id}/channels`), the bearer-token check in front of every `/v1.0`
//! route, and the helpers shared with the message routes (query options, errors, lookups).
//!
//! An app-only token (client credentials) reads every team of the tenant, member or not;
//! the token check tells the handlers with a [`Caller`] in the request's extensions, which
//! they pass to the lookups.

// Errors here are finished HTTP responses handed straight back to axum; boxing them would
// only add noise to every handler.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::identity::Access;
use crate::links::Link;
use crate::prng::Rng;
use crate::render;
use crate::tenant::{Channel, Team, Tenant};
use crate::Shared;

/// Query options, decoded (`$top`, `$select`, `$skiptoken`, …).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(q: Option<String>) -> Params {
        let q = q.unwrap_or_default();
        Params(
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `$top`: `default` when absent, 400 outside `1..=max`.
    pub(crate) fn top(&self, default: usize, max: usize) -> Result<usize, Response> {
        let Some(raw) = self.get("$top") else {
            return Ok(default);
        };
        match raw.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad_request(&format!(
                "Invalid page size specified: '{raw}'. Must be between 1 and {max} inclusive."
            ))),
        }
    }

    /// `$expand`: only `replies` is known.
    pub(crate) fn expand_replies(&self) -> Result<bool, Response> {
        match self.get("$expand") {
            None => Ok(false),
            Some(e) if e.trim() == "replies" => Ok(true),
            Some(e) => Err(bad_request(&format!("Parsing OData Select and Expand failed: Could not find a property named '{e}' on type 'microsoft.graph.chatMessage'."))),
        }
    }

    /// `$select`, checked against the properties an entity type has.
    pub(crate) fn select(
        &self,
        known: &[&str],
        type_name: &str,
    ) -> Result<Option<Vec<String>>, Response> {
        let Some(raw) = self.get("$select") else {
            return Ok(None);
        };
        let fields: Vec<String> = raw
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        if let Some(bad) = fields.iter().find(|f| !known.contains(&f.as_str())) {
            return Err(bad_request(&format!("Parsing OData Select and Expand failed: Could not find a property named '{bad}' on type 'microsoft.graph.{type_name}'.")));
        }
        Ok(Some(fields))
    }
}

/// Keeps only the selected properties of an entity.
pub(crate) fn project(v: Value, fields: &Option<Vec<String>>) -> Value {
    match (v, fields) {
        (Value::Object(o), Some(f)) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| f.contains(k))
                .collect::<Map<_, _>>(),
        ),
        (v, _) => v,
    }
}

/// A Graph error body: `{"error": {"code", "message", "innerError": {date, request-id, client-request-id}}}`.
pub(crate) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let id = request_id();
    let inner = json!({"date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(), "request-id": id, "client-request-id": id});
    (
        status,
        Json(json!({"error": {"code": code, "message": message, "innerError": inner}})),
    )
        .into_response()
}

pub(crate) fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Rng::new(NEXT.fetch_add(1, Ordering::Relaxed) ^ 0x5eed).guid()
}

/// The 404 Teams answers for an unknown team (`error-404-team-not-found.json`).
fn team_not_found(id: &str) -> Response {
    let msg = format!("No team found with Group Id {id}");
    let rid = request_id();
    let inner = json!({"message": msg, "code": "ItemNotFound", "innerError": {},
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(), "request-id": rid, "client-request-id": rid});
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {"code": "NotFound", "message": msg, "innerError": inner}})),
    )
        .into_response()
}

/// Who the request's token speaks for: the token check puts it into the request's
/// extensions, the handlers take it as `Extension<Caller>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    /// An app-only token (client credentials) reads every team of the tenant.
    pub app_only: bool,
}

/// A team the caller may read (the technical user's, or any with an app-only token), or
/// the error Graph gives.
pub(crate) fn find_team<'a>(t: &'a Tenant, caller: Caller, id: &str) -> Result<&'a Team, Response> {
    match t.team_by_id(id) {
        Some(team) if team.member || caller.app_only => Ok(team),
        // Not a member: Teams answers a bare 403 UnknownError (error-403-unknown-error-channel-messages.json).
        Some(_) => Err(graph_error(StatusCode::FORBIDDEN, "UnknownError", "")),
        None => Err(team_not_found(id)),
    }
}

pub(crate) fn find_channel<'a>(
    t: &'a Tenant,
    caller: Caller,
    team: &str,
    channel: &str,
) -> Result<(&'a Team, &'a Channel), Response> {
    let tm = find_team(t, caller, team)?;
    match tm.channels.iter().find(|c| c.id == channel) {
        Some(ch) => Ok((tm, ch)),
        None => Err(graph_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Channel {channel} not found in team {team}."),
        )),
    }
}

/// Every `/v1.0` request needs a bearer token issued here and not yet expired.
pub(crate) async fn require_token(
    State(app): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let (verdict, throttled, app) = {
        let mut w = app.lock();
        if let Some(left) = w.revoke_after.as_mut() {
            if *left == 0 {
                w.auth.revoke_access();
                w.revoke_after = None;
            } else {
                *left -= 1;
            }
        }
        let verdict = w.auth.check(presented);
        let app_only = w.auth.is_app_only(presented);
        if verdict != Access::Valid {
            w.stats.unauthorized += 1;
        }
        let throttled = (verdict == Access::Valid)
            .then(|| w.take_throttle())
            .flatten();
        (verdict, throttled, app_only)
    };
    if let Some(t) = throttled {
        return throttled_response(&t);
    }
    let message = match verdict {
        Access::Valid => {
            let mut req = req;
            req.extensions_mut().insert(Caller { app_only: app });
            return next.run(req).await;
        }
        Access::Expired => "Access token has expired or is not yet valid.",
        Access::Unknown => "IDX14100: JWT is not well formed, there are no dots (.).",
        Access::Missing => "Access token is empty.",
    };
    let mut resp = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"\", error=\"invalid_token\""),
    );
    resp
}

/// A pending injected failure of Graph requests (see `Emulator::throttle_next`).
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    pub remaining: usize,
    pub status: u16,
    pub retry_after: Option<String>,
}

/// The body of `throttled-429-response.json` (or its 503/504 equivalent) with `Retry-After`.
pub(crate) fn throttled_response(t: &Throttle) -> Response {
    let status = StatusCode::from_u16(t.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let code = if t.status == 429 {
        "TooManyRequests"
    } else {
        "ServiceUnavailable"
    };
    let inner = json!({"code": t.status.to_string(), "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "message": "Please retry after", "request-id": request_id(), "status": t.status.to_string()});
    let body = json!({"error": {"code": code, "innerError": inner, "message": "Please retry again later."}});
    let mut resp = (status, Json(body)).into_response();
    if let Some(value) = t
        .retry_after
        .as_deref()
        .and_then(|v| header::HeaderValue::from_str(v).ok())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, value);
    }
    resp
}

pub(crate) async fn me(State(app): State<Arc<Shared>>) -> Response {
    let w = app.lock();
    let mut v = render::user(&w.tenant.people.users[w.tenant.technical]);
    v["@odata.context"] = json!(format!("{}/v1.0/$metadata#users/$entity", app.base));
    Json(v).into_response()
}

#[rustfmt::skip]
const USER_FIELDS: &[&str] = &[
    "id", "displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle",
    "businessPhones", "mobilePhone", "officeLocation", "preferredLanguage", "proxyAddresses",
];

pub(crate) async fn users(State(app): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q);
    let (top, select) = match (p.top(100, 999), p.select(USER_FIELDS, "user")) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let offset = match p.get("$skiptoken").map(|t| app.links.decode(t)) {
        None => 0,
        Some(Some(Link::Users { offset })) => offset,
        Some(_) => return bad_request("Invalid skip token."),
    };
    let w = app.lock();
    // People who left the directory are not listed (their messages stay).
    let all: Vec<_> = w.tenant.people.users.iter().filter(|u| !u.left).collect();
    let value: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(top)
        .map(|u| {
            let mut v = render::user(u);
            // Not a default property: only when asked for (null without full profiles).
            if select
                .as_ref()
                .is_some_and(|s| s.iter().any(|f| f == "proxyAddresses"))
            {
                v["proxyAddresses"] = w.reach.proxy_addresses(&u.id, u.mail.as_deref());
            }
            project(v, &select)
        })
        .collect();
    let sel = select.as_ref().map(|s| s.join(","));
    let context = match &sel {
        Some(s) => format!("{}/v1.0/$metadata#users({s})", app.base),
        None => format!("{}/v1.0/$metadata#users", app.base),
    };
    let mut body = json!({"@odata.context": context, "value": value});
    if offset + top < all.len() {
        let token = app.links.encode(&Link::Users {
            offset: offset + top,
        });
        let sel = sel.map(|s| format!("$select={s}&")).unwrap_or_default();
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/users?{sel}$top={top}&$skiptoken={token}",
            app.base
        ));
    }
    Json(body).into_response()
}

pub(crate) async fn joined_teams(State(app): State<Arc<Shared>>) -> Response {
    let w = app.lock();
    let t = &w.tenant;
    let value: Vec<Value> = t
        .teams
        .iter()
        .filter(|tm| tm.member && !w.reach.is_associated(&tm.id))
        .map(|tm| render::joined_team(t, tm))
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#teams", app.base), "value": value}))
        .into_response()
}

/// `GET /teams`: every team of the tenant (`teams-list-all.json`), paged with `$skiptoken`.
pub(crate) async fn all_teams(State(app): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q);
    let top = match p.top(app.teams_page(), 999) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let offset = match p.get("$skiptoken").map(|t| app.links.decode(t)) {
        None => 0,
        Some(Some(Link::Teams { offset })) => offset,
        Some(_) => return bad_request("Invalid skip token."),
    };
    let w = app.lock();
    let t = &w.tenant;
    let value: Vec<Value> = t
        .teams
        .iter()
        .skip(offset)
        .take(top)
        .map(|tm| render::team_entity(t, tm))
        .collect();
    let mut body =
        json!({"@odata.context": format!("{}/v1.0/$metadata#teams", app.base), "value": value});
    if offset + top < t.teams.len() {
        let token = app.links.encode(&Link::Teams {
            offset: offset + top,
        });
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/teams?$top={top}&$skiptoken={token}",
            app.base
        ));
    }
    Json(body).into_response()
}

pub(crate) async fn team(
    State(app): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let w = app.lock();
    let team = match w.tenant.team_by_id(&id) {
        Some(team) if (team.member && !w.reach.is_associated(&id)) || caller.app_only => team,
        _ => return team_not_found(&id),
    };
    let mut v = render::team_entity(&w.tenant, team);
    v["@odata.context"] = json!(format!("{}/v1.0/$metadata#teams/$entity", app.base));
    Json(v).into_response()
}

#[rustfmt::skip]
const CHANNEL_FIELDS: &[&str] = &[
    "id", "createdDateTime", "displayName", "description", "membershipType",
];

pub(crate) async fn channels(
    State(app): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q);
    let select = match p.select(CHANNEL_FIELDS, "channel") {
        Ok(s) => s,
        Err(e) => return e,
    };
    let kind = match p.get("$filter").map(membership_filter) {
        None => None,
        Some(Some(k)) => Some(k),
        Some(None) => {
            return bad_request(
                "Invalid filter clause: only membershipType eq '<type>' is supported.",
            )
        }
    };
    let w = app.lock();
    let team = match find_team(&w.tenant, caller, &id) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let value: Vec<Value> = team
        .channels
        .iter()
        .filter(|c| w.reach.allows(&team.id, &c.id))
        .map(|c| {
            let mut v = render::channel(c);
            if w.reach.shared.contains(&c.id) {
                v["membershipType"] = json!("shared");
            }
            v
        })
        .filter(|c| {
            kind.as_ref()
                .is_none_or(|k| c["membershipType"] == k.as_str())
        })
        .map(|c| project(c, &select))
        .collect();
    let sel = select
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    let context = format!(
        "{}/v1.0/$metadata#teams('{}')/channels{sel}",
        app.base, team.id
    );
    Json(json!({"@odata.context": context, "@odata.count": value.len(), "value": value}))
        .into_response()
}

/// `membershipType eq 'private'` → `private`.
fn membership_filter(f: &str) -> Option<String> {
    let rest = f
        .trim()
        .strip_prefix("membershipType")?
        .trim_start()
        .strip_prefix("eq")?
        .trim();
    let kind = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    matches!(kind, "standard" | "private" | "shared").then(|| kind.to_owned())
}
