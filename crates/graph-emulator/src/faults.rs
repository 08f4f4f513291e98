//! Injected bad answers from Graph, for the connector's bad-input tests: an HTML error
//! page, truncated JSON, a page without `value`, a continuation link to another host,
//! 403/404 in Graph's own error shapes and throttling answers — on a chosen matching request
//! of a route (the next one, or after letting some through), optionally of one channel only.
//! The same middleware applies changes scheduled for a request (`Emulator::apply_during`),
//! before that request is answered: the tenant changes while a client pages through it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::truth::Change;
use crate::{Shared, World};

/// What the injected answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 200 with `text/html`: a proxy's or gateway's error page.
    HtmlErrorPage,
    /// 200 with JSON cut off in the middle.
    TruncatedJson,
    /// 200 with a JSON object that has no `value`.
    MissingValue,
    /// The real page, its `@odata.nextLink`/`@odata.deltaLink` moved to another host.
    ForeignLink,
    /// 403 like `error-403-unknown-error-channel-messages.json`.
    Forbidden,
    /// 404 like `error-404-team-not-found.json`.
    NotFound,
    /// 504 with Graph's generic error body and no `Retry-After`.
    GatewayTimeout,
    /// `status` (429, 503, 504…) with the throttling body of `throttled-429-response.json`
    /// and, when given, `Retry-After` in decimal seconds.
    Throttled {
        status: u16,
        retry_after_ms: Option<u32>,
    },
}

/// A pending fault: `route` as counted in `EmulatorStats::by_route`, `scope` a substring
/// of the path (a channel or team id) or empty for any.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub route: String,
    pub scope: String,
    /// Matching requests still to let through before the first fault.
    pub skip: usize,
    pub fault: Fault,
    pub remaining: usize,
}

/// A change to apply when a matching request arrives.
#[derive(Debug, Clone)]
pub(crate) struct Scheduled {
    /// A route name as counted in `EmulatorStats::by_route`; "" for any Graph request.
    pub route: String,
    /// A substring of the path (a team or channel id); "" for any.
    pub scope: String,
    /// Matching requests still to let through first.
    pub skip: usize,
    pub change: Change,
    pub bump: bool,
}

pub(crate) async fn inject(State(app): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let fault = {
        let mut w = app.lock();
        let route = crate::server::route_of(&path);
        run_scheduled(&mut w, route, &path);
        let mut fired = None;
        let matching = w.faults.iter_mut().filter(|p| {
            p.remaining > 0 && route == Some(p.route.as_str()) && path.contains(p.scope.as_str())
        });
        for p in matching {
            if p.skip > 0 {
                p.skip -= 1;
            } else if fired.is_none() {
                p.remaining -= 1;
                fired = Some(p.fault);
            }
        }
        if matches!(fired, Some(Fault::Throttled { .. })) {
            w.stats.throttled += 1;
        }
        fired
    };
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    match fault {
        Fault::HtmlErrorPage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response(),
        Fault::TruncatedJson => json(
            StatusCode::OK,
            r#"{"@odata.context":"x","value":[{"id":"17"#.into(),
        ),
        Fault::MissingValue => json(StatusCode::OK, r#"{"@odata.context":"x"}"#.into()),
        Fault::Forbidden => json(
            StatusCode::FORBIDDEN,
            include_str!("../../../fixtures/graph/error-403-unknown-error-channel-messages.json")
                .into(),
        ),
        Fault::NotFound => json(
            StatusCode::NOT_FOUND,
            include_str!("../../../fixtures/graph/error-404-team-not-found.json").into(),
        ),
        Fault::GatewayTimeout => json(
            StatusCode::GATEWAY_TIMEOUT,
            r#"{"error":{"code":"UnknownError","message":"Gateway timeout"}}"#.into(),
        ),
        Fault::Throttled {
            status,
            retry_after_ms,
        } => crate::graph::throttled_response(&crate::graph::Throttle {
            remaining: 0,
            status,
            retry_after: retry_after_ms.map(|ms| format!("{:.3}", f64::from(ms) / 1000.0)),
        }),
        Fault::ForeignLink => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let text =
                String::from_utf8_lossy(&bytes).replace(&app.base, "http://graph.attacker.example");
            Response::from_parts(parts, Body::from(text))
        }
    }
}

/// Applies the scheduled changes that fall due with this request of `route`.
fn run_scheduled(w: &mut World, route: Option<&str>, path: &str) {
    if w.control.scheduled.is_empty() {
        return;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut due = Vec::new();
    w.control.scheduled.retain_mut(|s| {
        if !s.route.is_empty() && route != Some(s.route.as_str()) || !path.contains(&s.scope) {
            return true;
        }
        if s.skip > 0 {
            s.skip -= 1;
            return true;
        }
        due.push((s.change.clone(), s.bump));
        false
    });
    for (change, bump) in due {
        let report = w.tenant.apply(&change, bump, now);
        w.control.applied.push(report);
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
