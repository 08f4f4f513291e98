//! The hostile server: one HTTP listener that answers a request by the first rule whose
//! route matches (a fixed [`Answer`], one computed from the request, or the upstream's
//! JSON edited) and proxies everything else to its upstream — the emulator or the sink —
//! with the upstream's links rewritten to point here, so a test overrides only the one
//! route it is about. It records every request it receives: a second listener on
//! 127.0.0.2 plays "another host", and a test asserts that nothing reached it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::Value;

use super::answer::Answer;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Which requests a rule answers: a method (or any), a substring of the path, how many
/// times (or always), and how long to wait before answering.
#[derive(Debug, Clone)]
pub struct Route {
    method: Option<Method>,
    path: String,
    /// The path must end with `path` (else contain it).
    suffix: bool,
    /// Further substrings the path must contain.
    also: Vec<String>,
    times: Option<usize>,
    delay: Duration,
}

pub fn get(path: &str) -> Route {
    Route {
        method: Some(Method::GET),
        ..any(path)
    }
}

pub fn post(path: &str) -> Route {
    Route {
        method: Some(Method::POST),
        ..any(path)
    }
}

pub fn any(path: &str) -> Route {
    Route {
        method: None,
        path: path.to_string(),
        suffix: false,
        also: Vec::new(),
        times: None,
        delay: Duration::ZERO,
    }
}

impl Route {
    pub fn times(mut self, n: usize) -> Route {
        self.times = Some(n);
        self
    }

    pub fn once(self) -> Route {
        self.times(1)
    }

    /// Only paths that end with the route's path (`/channels`, not `/channels/…/delta`).
    pub fn at_end(mut self) -> Route {
        self.suffix = true;
        self
    }

    /// The path must contain `part` as well.
    pub fn and_path(mut self, part: &str) -> Route {
        self.also.push(part.to_string());
        self
    }

    /// Answers only after `d` (the request is received and recorded at once).
    pub fn after(mut self, d: Duration) -> Route {
        self.delay = d;
        self
    }

    fn matches(&self, s: &Seen) -> bool {
        let path = s.path();
        let hit = if self.suffix {
            path.ends_with(&self.path)
        } else {
            path.contains(&self.path)
        };
        hit && self.also.iter().all(|p| path.contains(p.as_str()))
            && self.method.as_ref().is_none_or(|m| *m == s.method)
    }
}

type Respond = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;
type Edit = Arc<dyn Fn(&mut Value) + Send + Sync>;

#[derive(Clone)]
enum Reply {
    Answer(Respond),
    /// The upstream's answer, its JSON body edited.
    Edit(Edit),
    /// The upstream's answer as it is (after the route's delay).
    Pass,
}

struct Rule {
    route: Route,
    reply: Reply,
    left: Option<usize>,
}

struct Shared {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    /// `http://host:port` of the upstream, if any.
    upstream: Option<String>,
    /// `http://host:port` of this server.
    base: String,
    client: reqwest::Client,
}

/// A running hostile server; it stops when dropped.
pub struct Hostile {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bodies the connector posts are small; a cap keeps a runaway one out of the test's memory.
const MAX_RECORDED_BODY: usize = 16 << 20;

impl Hostile {
    /// A server on 127.0.0.1 that proxies what no rule answers to `upstream`
    /// (`http://127.0.0.1:PORT`).
    pub async fn proxy(upstream: &str) -> Hostile {
        Self::start(
            [127, 0, 0, 1],
            Some(upstream.trim_end_matches('/').to_string()),
        )
        .await
    }

    /// "Another host": a server on 127.0.0.2 with no upstream, answering 404 to anything
    /// no rule covers; what it records is what left the connector for a foreign host.
    pub async fn elsewhere() -> Hostile {
        Self::start([127, 0, 0, 2], None).await
    }

    async fn start(ip: [u8; 4], upstream: Option<String>) -> Hostile {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::from(ip), 0))
            .await
            .expect("hostile server binds");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
        #[allow(clippy::disallowed_methods)] // the test's own proxy client, not the product's
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .build()
            .expect("proxy client");
        let shared = Arc::new(Shared {
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            upstream,
            base,
            client,
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Hostile { shared, task }
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// `host:port`, as a `Location` or an error line names it.
    pub fn host(&self) -> String {
        self.shared.base.trim_start_matches("http://").to_string()
    }

    pub fn answer(&self, route: Route, answer: Answer) {
        self.answer_with(route, move |_| answer.clone());
    }

    /// Answers with what `f` makes of the request (echoes, self-references).
    pub fn answer_with(&self, route: Route, f: impl Fn(&Seen) -> Answer + Send + Sync + 'static) {
        self.add(route, Reply::Answer(Arc::new(f)));
    }

    /// Proxies, then lets `f` edit the upstream's JSON body.
    pub fn edit(&self, route: Route, f: impl Fn(&mut Value) + Send + Sync + 'static) {
        self.add(route, Reply::Edit(Arc::new(f)));
    }

    /// Proxies unchanged; with [`Route::after`], late.
    pub fn pass(&self, route: Route) {
        self.add(route, Reply::Pass);
    }

    fn add(&self, route: Route, reply: Reply) {
        let left = route.times;
        lock(&self.shared.rules).push(Rule { route, reply, left });
    }

    /// Every request received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// Requests whose path contains `path`.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.shared.seen)
            .iter()
            .filter(|s| s.path().contains(path))
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_RECORDED_BODY)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    lock(&s.seen).push(seen.clone());
    let (delay, reply) = pick(&s, &seen);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match reply {
        Some(Reply::Answer(f)) => {
            let answer = f(&seen);
            if answer.never {
                std::future::pending::<()>().await;
            }
            answer.into_response()
        }
        Some(Reply::Edit(f)) => {
            let (status, headers, body) = forward(&s, &seen).await;
            let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            f(&mut v);
            let mut answer = Answer::json(status, &v);
            let others = headers.into_iter();
            answer
                .headers
                .extend(others.filter(|(k, _)| !k.eq_ignore_ascii_case("content-type")));
            answer.into_response()
        }
        Some(Reply::Pass) | None => {
            let (status, headers, body) = forward(&s, &seen).await;
            let mut answer = Answer::status(status).body(super::answer::Payload::Bytes(body));
            answer.headers.extend(headers);
            answer.into_response()
        }
    }
}

/// The first rule that matches and has answers left (its count taken).
fn pick(s: &Shared, seen: &Seen) -> (Duration, Option<Reply>) {
    let mut rules = lock(&s.rules);
    let Some(rule) = rules
        .iter_mut()
        .find(|r| r.left != Some(0) && r.route.matches(seen))
    else {
        return (Duration::ZERO, None);
    };
    if let Some(n) = rule.left.as_mut() {
        *n -= 1;
    }
    (rule.route.delay, Some(rule.reply.clone()))
}

/// The upstream's answer to `seen`: status, the headers worth passing on, and the body with
/// the upstream's base URL replaced by ours (its links must lead back here).
async fn forward(s: &Shared, seen: &Seen) -> (u16, Vec<(String, String)>, Bytes) {
    let Some(upstream) = &s.upstream else {
        let body = br#"{"error":{"code":"NotFound","message":"nothing here"}}"#;
        return (404, json_type(), Bytes::from_static(body));
    };
    let mut req = s
        .client
        .request(seen.method.clone(), format!("{upstream}{}", seen.uri))
        .body(seen.body.clone());
    for (k, v) in &seen.headers {
        if !is_hop(k.as_str()) {
            req = req.header(k, v);
        }
    }
    let Ok(resp) = req.send().await else {
        return (502, json_type(), Bytes::from_static(b"{}"));
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| !is_hop(k.as_str()))
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body).replace(upstream.as_str(), &s.base);
    (status, headers, Bytes::from(text))
}

fn json_type() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into())]
}

/// Headers that describe one hop (or a body we re-encode), not the message.
fn is_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "accept-encoding"
            | "content-encoding"
    )
}
