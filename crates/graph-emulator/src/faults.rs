//! Injected bad answers from Graph, for the connector's bad-input tests: an HTML error
//! page, truncated JSON, a page without `value`, a continuation link to another host, and
//! 403/404 in Graph's own error shapes — on the next matching request of a route,
//! optionally of one channel only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Shared;

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
}

/// A pending fault: `route` as counted in `EmulatorStats::by_route`, `scope` a substring
/// of the path (a channel or team id) or empty for any.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub route: String,
    pub scope: String,
    pub fault: Fault,
    pub remaining: usize,
}

pub(crate) async fn inject(State(app): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let fault = {
        let mut w = app.lock();
        let route = crate::server::route_of(&path);
        let found = w.faults.iter_mut().find(|p| {
            p.remaining > 0 && route == Some(p.route.as_str()) && path.contains(p.scope.as_str())
        });
        found.map(|p| {
            p.remaining -= 1;
            p.fault
        })
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

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
