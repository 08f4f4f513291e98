//! The ingest sink: `POST /v1/documents` as the ingest contract in DESIGN.md describes it.
//!
//! It validates what a connector sends (content type, bearer token, document shape), records
//! every POST (accepted or not) in arrival order, and can be told to fail — the next POSTs,
//! every POST, or one chosen POST ([`SinkFault`]: a status, or an answer later than the
//! client waits) — so tests can drive the connector's retry and permanent-failure paths,
//! or to answer every POST slowly (a busy ingest, for the connector's backpressure).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::server::{self, ServerGuard};

/// One POST as received.
#[derive(Debug, Clone)]
pub struct ReceivedBatch {
    pub idempotency_key: Option<String>,
    /// The status the sink answered with.
    pub status: u16,
    /// The batch's documents (empty when the body was not a valid batch).
    pub documents: Vec<Value>,
}

/// What the sink does with one chosen POST (see [`Sink::fail_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFault {
    /// Answers with this status; the batch is not taken.
    Status(u16),
    /// Takes the batch (recorded as accepted) but answers this much later: a client that
    /// gives up sooner sends it again.
    Slow(Duration),
}

#[derive(Debug, Default)]
struct SinkState {
    /// (POSTs still to let through, fault) per chosen POST.
    chosen: Vec<(usize, SinkFault)>,
    token: Option<String>,
    batches: Vec<ReceivedBatch>,
    fail_next: usize,
    fail_next_status: u16,
    fail_always: Option<u16>,
    requests: u64,
    /// Log a line per accepted batch (the foreground `emulator` command).
    log: bool,
    /// How long every POST waits before it is answered.
    delay: Duration,
    /// Forget the documents of each batch once judged: a long benchmark's sink would
    /// otherwise hold every document it was sent.
    drop_documents: bool,
    /// POSTs received and not answered yet, and the most there were at once.
    open: usize,
    most_open: usize,
}

/// A running ingest sink; clones share the server, which stops on [`Sink::shutdown`] or when
/// the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Sink {
    state: Arc<Mutex<SinkState>>,
    url: String,
    guard: Arc<ServerGuard>,
}

impl Sink {
    /// With `Some(token)`, every POST must carry `Authorization: Bearer <token>` (else 401).
    pub async fn start(token: Option<String>, addr: SocketAddr) -> std::io::Result<Sink> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}/v1/documents", listener.local_addr()?);
        let state = Arc::new(Mutex::new(SinkState {
            token,
            ..SinkState::default()
        }));
        let router = Router::new()
            .route("/v1/documents", post(receive))
            .with_state(state.clone());
        let guard = server::serve(listener, router);
        Ok(Sink {
            state,
            url,
            guard: Arc::new(guard),
        })
    }

    /// The full POST URL, e.g. `http://127.0.0.1:P/v1/documents`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn batches(&self) -> Vec<ReceivedBatch> {
        self.lock().batches.clone()
    }

    /// Documents of the accepted (2xx) batches, in arrival order.
    pub fn documents(&self) -> Vec<Value> {
        let s = self.lock();
        s.batches
            .iter()
            .filter(|b| (200..300).contains(&b.status))
            .flat_map(|b| b.documents.clone())
            .collect()
    }

    /// Answer the next `n` POSTs with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut s = self.lock();
        s.fail_next = n;
        s.fail_next_status = status;
    }

    /// `Some(status)`: answer every POST with it until set back to `None`.
    pub fn fail_always(&self, status: Option<u16>) {
        self.lock().fail_always = status;
    }

    /// Answers the POST after `skip` further ones with `fault`.
    pub fn fail_at(&self, skip: usize, fault: SinkFault) {
        self.lock().chosen.push((skip, fault));
    }

    /// Forgets every failure not yet answered (`fail_next`, `fail_always`, `fail_at`).
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.chosen.clear();
        s.fail_next = 0;
        s.fail_always = None;
    }

    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// The most POSTs the sink held at once (received, not answered yet): with
    /// [`Sink::set_delay`], how much the connector keeps waiting for the ingest.
    pub fn most_open(&self) -> usize {
        self.lock().most_open
    }

    pub fn shutdown(&self) {
        self.guard.stop();
    }

    pub(crate) fn log_batches(&self, on: bool) {
        self.lock().log = on;
    }

    /// Answers every POST this much later (an ingest under load); POSTs are delayed side
    /// by side, not one after the other.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// With `false`, batches are recorded without their documents ([`Sink::documents`]
    /// stays empty): for long runs where only the counts matter.
    pub fn keep_documents(&self, keep: bool) {
        self.lock().drop_documents = !keep;
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn receive(
    State(state): State<Arc<Mutex<SinkState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, delay) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.open += 1;
        s.most_open = s.most_open.max(s.open);
        record(&mut s, &headers, &body)
    };
    // Counted as answered however the handler ends (a client that hangs up drops it).
    let _answered = Answered(&state);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

struct Answered<'a>(&'a Mutex<SinkState>);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.open = s.open.saturating_sub(1);
    }
}

/// Judges and records one POST; returns the answer and how long to hold it back.
fn record(s: &mut SinkState, headers: &HeaderMap, body: &[u8]) -> (Response, Duration) {
    s.requests += 1;
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let documents = parsed
        .as_ref()
        .and_then(|v| v["documents"].as_array())
        .cloned()
        .unwrap_or_default();
    let chosen = take_chosen(s);
    let verdict = match chosen {
        Some(SinkFault::Status(code)) => Err((
            status(code),
            "failure injected by the test (fail_at)".into(),
        )),
        _ => judge(s, headers, parsed.as_ref()),
    };
    let delay = match chosen {
        Some(SinkFault::Slow(d)) => d,
        _ => s.delay,
    };
    let status = verdict
        .as_ref()
        .map_or_else(|(code, _)| *code, |_| StatusCode::OK);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if status.is_success() && s.log {
        let deletes = documents.iter().filter(|d| d["op"] == "delete").count();
        tracing::info!(
            documents = documents.len(),
            upserts = documents.len() - deletes,
            deletes,
            "ingest sink accepted a batch"
        );
    }
    let accepted = documents.len();
    let documents = if s.drop_documents {
        Vec::new()
    } else {
        documents
    };
    s.batches.push(ReceivedBatch {
        idempotency_key: key,
        status: status.as_u16(),
        documents,
    });
    let response = match verdict {
        Ok(()) => Json(json!({"accepted": accepted})).into_response(),
        Err((code, message)) => (
            code,
            Json(json!({"error": code.canonical_reason().unwrap_or("error"), "message": message})),
        )
            .into_response(),
    };
    (response, delay)
}

/// The chosen fault that falls due with this POST, counting it against the others.
fn take_chosen(s: &mut SinkState) -> Option<SinkFault> {
    let mut due = None;
    s.chosen.retain_mut(|(skip, fault)| {
        if *skip > 0 {
            *skip -= 1;
            true
        } else if due.is_none() {
            due = Some(*fault);
            false
        } else {
            true
        }
    });
    due
}

/// Auth first, then injected failures, then the payload itself.
fn judge(
    s: &mut SinkState,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<(), (StatusCode, String)> {
    if let Some(expected) = &s.token {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth.strip_prefix("Bearer ") != Some(expected.as_str()) {
            return Err((
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            ));
        }
    }
    if let Some(code) = s.fail_always {
        return Err((
            status(code),
            "failure injected by the test (fail_always)".into(),
        ));
    }
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return Err((
            status(s.fail_next_status),
            "failure injected by the test (fail_next)".into(),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/json, got '{content_type}'"),
        ));
    }
    validate(body).map_err(|m| (StatusCode::BAD_REQUEST, m))
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Checks `{"documents": [...]}` against the ingest contract; the error names the problem.
fn validate(body: Option<&Value>) -> Result<(), String> {
    let body = body.ok_or("body is not valid JSON")?;
    let docs = body
        .get("documents")
        .and_then(Value::as_array)
        .ok_or("body must be an object with a \"documents\" array")?;
    for (i, d) in docs.iter().enumerate() {
        let field = |name: &str| format!("documents[{i}].{name}");
        let str_field = |name: &str| {
            d.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{}: expected a string", field(name)))
        };
        if str_field("id")?.is_empty() {
            return Err(format!("{}: must not be empty", field("id")));
        }
        match d.get("op").and_then(Value::as_str) {
            Some("delete") => {}
            Some("upsert") => {
                str_field("author")?;
                str_field("content")?;
                let created = str_field("created_at")?;
                if chrono::DateTime::parse_from_rfc3339(created).is_err() {
                    return Err(format!(
                        "{}: not an RFC 3339 timestamp: {created}",
                        field("created_at")
                    ));
                }
                let mentions = d
                    .get("mentions")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("{}: expected an array", field("mentions")))?;
                if !mentions.iter().all(Value::is_string) {
                    return Err(format!(
                        "{}: expected an array of strings",
                        field("mentions")
                    ));
                }
            }
            other => {
                return Err(format!(
                    "{}: expected \"upsert\" or \"delete\", got {}",
                    field("op"),
                    other.map_or("nothing".to_owned(), |o| format!("\"{o}\""))
                ))
            }
        }
    }
    Ok(())
}
