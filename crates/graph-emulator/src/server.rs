//! HTTP plumbing shared by the emulator and the sink: serving a router until a guard is
//! stopped or dropped, the emulator's route table, the per-route request counters,
//! `GET /_emulator/stats` (the counters as JSON, for a benchmark in another process) and
//! `POST /_emulator/stats/reset` (between two runs the benchmark measures apart).

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::watch;

use crate::{delta, device, faults, graph, identity, limits, messages, reach, Shared};

/// When a request reached the server (before the configured latency), as a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival(pub std::time::Instant);

/// Stops a server when the last handle goes away.
#[derive(Debug)]
pub(crate) struct ServerGuard(watch::Sender<bool>);

impl ServerGuard {
    pub(crate) fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `router` on `listener` until the guard is stopped or dropped.
pub(crate) fn serve(listener: tokio::net::TcpListener, router: Router) -> ServerGuard {
    let (tx, mut rx) = watch::channel(false);
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        };
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await;
    });
    ServerGuard(tx)
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let chan = "/v1.0/teams/{team}/channels/{channel}";
    let graph = Router::new()
        .route("/v1.0/me", get(graph::me))
        .route("/v1.0/users", get(graph::users))
        .route("/v1.0/me/joinedTeams", get(graph::joined_teams))
        .route(
            "/v1.0/me/teamwork/associatedTeams",
            get(reach::associated_teams),
        )
        .route("/v1.0/teams", get(graph::all_teams))
        .route("/v1.0/teams/{team}", get(graph::team))
        .route("/v1.0/teams/{team}/channels", get(graph::channels))
        .route(&format!("{chan}/messages"), get(messages::list))
        .route(&format!("{chan}/messages/delta"), get(delta::delta))
        .route(&format!("{chan}/messages/{{id}}"), get(messages::single))
        .route(
            &format!("{chan}/messages/{{id}}/replies"),
            get(messages::replies),
        )
        .route(
            &format!("{chan}/messages/{{id}}/replies/{{reply}}"),
            get(messages::reply),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), reach::guard))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::inject,
        ))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            limits::enforce,
        ))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            graph::require_token,
        ));
    Router::new()
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/stats/reset", post(reset_stats))
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device::devicecode))
        .merge(graph)
        .fallback(|| async {
            graph::graph_error(
                axum::http::StatusCode::NOT_FOUND,
                "UnknownError",
                "Resource not found for the segment.",
            )
        })
        .layer(middleware::from_fn_with_state(shared.clone(), count))
        .with_state(shared)
}

async fn count(State(app): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let route = classify(req.uri().path());
    if route == Some("stats") {
        return next.run(req).await;
    }
    let identity = matches!(route, Some("token" | "devicecode"));
    if !identity {
        // The way in: the request reaches Graph (is counted and judged) after it.
        let jitter = app.next_jitter();
        if !jitter.is_zero() {
            tokio::time::sleep(jitter).await;
        }
    }
    let now = std::time::Instant::now();
    req.extensions_mut().insert(Arrival(now));
    {
        let mut w = app.lock();
        w.stats.requests += 1;
        w.reach.count(req.uri().path());
        if let Some(route) = route {
            *w.stats.by_route.entry(route.to_owned()).or_default() += 1;
            w.routes.push(route);
        }
        if matches!(route, Some("delta" | "messages" | "replies")) {
            w.stats.message_requests += 1;
            w.arrivals.push(now.duration_since(app.started));
        }
    }
    let latency = app.latency();
    if !identity && !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    next.run(req).await
}

/// The route name a request path counts under.
pub(crate) fn route_of(path: &str) -> Option<&'static str> {
    classify(path)
}

/// `GET /_emulator/stats[?arrivals=1]`: [`crate::EmulatorStats`] as JSON plus the elapsed
/// time and, on request, the message-route arrival offsets in milliseconds. Not counted, no
/// token needed.
async fn stats(State(app): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let p = graph::Params::parse(q);
    let with_arrivals = p.get("arrivals").is_some_and(|v| v != "0");
    let mut v = serde_json::to_value(app.stats()).unwrap_or_default();
    let w = app.lock();
    v["elapsed_ms"] = serde_json::json!(app.started.elapsed().as_secs_f64() * 1e3);
    if with_arrivals {
        let ms: Vec<f64> = w.arrivals.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v["arrivals_ms"] = serde_json::json!(ms);
    }
    Json(v).into_response()
}

/// `POST /_emulator/stats/reset`: starts the counters over (see `Emulator::reset_stats`).
async fn reset_stats(State(app): State<Arc<Shared>>) -> axum::http::StatusCode {
    app.reset_stats();
    axum::http::StatusCode::NO_CONTENT
}

fn classify(path: &str) -> Option<&'static str> {
    if path.starts_with("/_emulator/") {
        return Some("stats");
    }
    if path.ends_with("/oauth2/v2.0/token") {
        return Some("token");
    }
    if path.ends_with("/oauth2/v2.0/devicecode") {
        return Some("devicecode");
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v1.0", "me"] => Some("me"),
        ["v1.0", "me", "joinedTeams"] => Some("joinedTeams"),
        ["v1.0", "me", "teamwork", "associatedTeams"] => Some("associatedTeams"),
        ["v1.0", "users"] => Some("users"),
        ["v1.0", "teams"] => Some("teams"),
        ["v1.0", "teams", _] => Some("team"),
        ["v1.0", "teams", _, "channels"] => Some("channels"),
        ["v1.0", "teams", _, "channels", _, "messages", "delta"] => Some("delta"),
        ["v1.0", "teams", _, "channels", _, "messages", ..] if segs.get(7) == Some(&"replies") => {
            Some("replies")
        }
        ["v1.0", "teams", _, "channels", _, "messages", ..] => Some("messages"),
        _ => None,
    }
}
