//! [`Graph::get`]: one GET with everything Graph asks of a client — the bearer token
//! (refreshed once on 401), `Prefer: include-unknown-enum-members`, the rate limits before
//! sending, and the shared retry policy ([`crate::http::Policy`]) — and its answers turned
//! into [`GraphError`] values the crawl can branch on.
//!
//! What reaches an error message is what the privacy rules allow (issue 12 item 5): status,
//! Graph's error code and a fixed description. Graph's own error `message` is kept for the
//! crawl to classify (an expired delta token says so only there) but never printed, and a
//! body that does not decode is described by serde's category and position, never by the
//! value serde quotes.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::models::ErrorEnvelope;
use super::places::{Place, Places};
use super::Endpoints;
use crate::auth::TokenSource;
use crate::exit::Fatal;
use crate::http::{
    location_host, path_of, read_capped, read_error_body, status_retry, Action, BigBodies,
    BodyError, Counters, Limiter, Policy, Read, Reason, Retry, Scope, Stopped, TransportError,
};
use crate::shutdown::{Cancelled, Shutdown};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// A final HTTP error with Graph's error code (`innerError.code` when more specific).
    /// `message` is Graph's text: used to classify, never displayed.
    #[error("Graph answered {status} {code}")]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// Retries ran out; the last reason (status or transport error with its causes).
    #[error("Graph still failing after {attempts} attempts ({last}); raise [limits] max_retries or try later")]
    Unavailable { attempts: u32, last: Reason },
    /// Signing in failed; the whole run stops.
    #[error("{0}")]
    Auth(Fatal),
    /// The body is not what Graph sends (HTML error page, truncated JSON, missing `value`).
    #[error("Graph answered {status} to {path} with a body that is not the expected JSON ({detail}, {bytes} bytes)")]
    Invalid {
        status: u16,
        path: String,
        detail: String,
        bytes: usize,
    },
    /// A body larger than `[limits] max_response_size`.
    #[error("a Graph response to {path} is larger than [limits] max_response_size ({cap} bytes); the channel is retried next run: raise the cap if the page is genuine")]
    TooLarge { path: String, cap: u64 },
    /// A 3xx: never followed (the request carries our token).
    #[error("Graph answered {status} redirecting {path} to {host}; redirects are not followed (check [microsoft] graph_url and any proxy)")]
    Redirect {
        status: u16,
        path: String,
        host: String,
    },
    /// A continuation link that points at another host (or repeats itself).
    #[error("{0}")]
    Refused(String),
    #[error("interrupted")]
    Cancelled,
}

pub struct Graph {
    pub endpoints: Endpoints,
    http: reqwest::Client,
    tokens: Arc<TokenSource>,
    limiter: Limiter,
    counters: Arc<Counters>,
    max_retries: u32,
    max_response_size: u64,
    /// Bodies past 4 MB in memory at once (see [`Graph::get_page`]).
    big_bodies: BigBodies,
    /// Pages in memory at once, from the request until they are processed (see
    /// [`Graph::get_page`]).
    pages: Arc<Places>,
    shutdown: Shutdown,
}

/// A successful answer's body, not decoded yet, with its page's hold on memory (for
/// [`Graph::get_page`]): kept by the caller until the page is processed (its documents
/// handed to the ingest), then dropped.
pub struct RawPage {
    status: u16,
    path: String,
    bytes: Vec<u8>,
    big: Option<OwnedSemaphorePermit>,
    hold: Option<PageHold>,
}

impl RawPage {
    /// The body as `T`, whose strings may borrow from it; a body that is not `T` is
    /// [`GraphError::Invalid`], naming the path and what is wrong, never the content.
    ///
    /// The body is checked to be UTF-8 once, as a whole, and then decoded as text: decoded
    /// from bytes, every string would be checked on its own, a call per string (a tenth
    /// of the decoding). A body that is not UTF-8 is decoded from bytes all the same, for
    /// the error to say where.
    pub fn decode<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, GraphError> {
        let decoded = match std::str::from_utf8(&self.bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&self.bytes),
        };
        decoded.map_err(|e| GraphError::Invalid {
            status: self.status,
            path: self.path.clone(),
            detail: describe_json_error(&e),
            bytes: self.bytes.len(),
        })
    }

    /// Drops the body and keeps the page's place in memory (and big-body permit), for the
    /// page's documents still waiting for the ingest.
    pub fn into_place(self) -> Option<PageHold> {
        self.hold
    }
}

/// A page's place in memory and, for a body past 4 MB, its big-body permit; dropped once
/// the page's documents are handed to the ingest.
pub struct PageHold {
    _page: Place,
    _big: Option<OwnedSemaphorePermit>,
}

/// Pages in memory at once per request in flight (`[limits] concurrency`): one being
/// fetched, one being processed or waiting for the ingest.
const PAGES_PER_REQUEST: usize = 2;

/// Giant pages processed at once: each costs up to twice `max_response_size`.
const BIG_BODIES: usize = 1;

impl Graph {
    /// The client for `config`'s Graph host and `[limits]`.
    pub fn for_config(
        config: &crate::config::Config,
        http: reqwest::Client,
        tokens: Arc<TokenSource>,
        counters: Arc<Counters>,
        shutdown: Shutdown,
    ) -> Self {
        let limits = &config.limits;
        Graph {
            endpoints: Endpoints::new(&config.graph_url),
            http,
            tokens,
            limiter: Limiter::new(
                limits.requests_per_second,
                limits.per_channel_requests_per_second,
                limits.concurrency,
            ),
            counters,
            max_retries: limits.max_retries,
            max_response_size: limits.max_response_size,
            big_bodies: BigBodies::new(Semaphore::new(BIG_BODIES)),
            pages: Places::new(limits.concurrency.max(1).saturating_mul(PAGES_PER_REQUEST)),
            shutdown,
        }
    }

    /// The same client with another retry budget (`doctor` gives up sooner than a run).
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// GETs `url` and decodes the JSON body, drawing on the rate budget of `scope`.
    /// Whether the tenant's request budget has room another channel could use (see
    /// [`Limiter::has_spare`]).
    pub fn has_spare(&self) -> bool {
        self.limiter.has_spare()
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        scope: Scope<'_>,
    ) -> Result<T, GraphError> {
        self.fetch_raw(url, scope, false).await?.decode()
    }

    /// [`Graph::get`] for a page the caller processes before it asks for the next one,
    /// holding its place in memory until the caller drops it, once the page is processed.
    ///
    /// What a run holds in memory is bounded by pages, not by channels: at most
    /// `2 × concurrency` pages are in memory at once (a channel waits for its own rate
    /// first, holding nothing, then for a page's place), and a body past 4 MB also waits
    /// for one of the few big-body permits. However many channels are in flight and
    /// however slow the ingest, the pages waiting for it are that many.
    ///
    /// The page comes back undecoded: the caller decodes it ([`RawPage::decode`]) into
    /// messages that borrow their text from the body instead of copying every field.
    pub async fn get_page(&self, url: &str, scope: Scope<'_>) -> Result<RawPage, GraphError> {
        // Held until the request has left: a channel's place in its team's line.
        let _paced = self
            .shutdown
            .run(self.limiter.own_pace(scope))
            .await
            .map_err(|_| GraphError::Cancelled)?;
        let left = match scope {
            Scope::Channel { left, .. } => left,
            _ => 0,
        };
        let page = self.page_place(left).await?;
        let mut raw = self.fetch_raw(url, scope, true).await?;
        raw.hold = Some(PageHold {
            _page: page,
            _big: raw.big.take(),
        });
        Ok(raw)
    }

    /// [`Graph::get`] undecoded, for a body whose decoded values borrow from it.
    pub async fn get_raw(&self, url: &str, scope: Scope<'_>) -> Result<RawPage, GraphError> {
        self.fetch_raw(url, scope, false).await
    }

    /// A place for a page's worth of documents in memory (one of `2 × concurrency`), for
    /// what a channel still sends once its last page is processed. Waiters with more
    /// requests `left` go first, as in the tenant queue ([`places`](super::places)).
    pub async fn page_place(&self, left: u32) -> Result<Place, GraphError> {
        self.shutdown
            .run(self.pages.acquire(crate::http::rank(left)))
            .await
            .map_err(|_| GraphError::Cancelled)
    }

    async fn fetch_raw(
        &self,
        url: &str,
        scope: Scope<'_>,
        big: bool,
    ) -> Result<RawPage, GraphError> {
        if !self.endpoints.owns(url) {
            return Err(GraphError::Refused(format!(
                "refusing to follow a link to another host than [microsoft] graph_url: {}",
                host_of(url)
            )));
        }
        let policy = Policy {
            max_retries: self.max_retries,
            shutdown: &self.shutdown,
            counters: &self.counters,
            endpoint: "Graph",
        };
        let refreshed = std::sync::atomic::AtomicBool::new(false);
        let body = policy
            .run(|| self.attempt(url, scope, &refreshed, big))
            .await
            .map_err(|stopped| match stopped {
                Stopped::Failed(e) => e,
                Stopped::Exhausted { attempts, last } => GraphError::Unavailable { attempts, last },
                Stopped::Cancelled => GraphError::Cancelled,
            })?;
        Ok(RawPage {
            status: body.status,
            path: path_of(url),
            bytes: body.read.bytes,
            big: body.read.big,
            hold: None,
        })
    }

    /// One attempt: token, limits, the request, the answer classified. A 401 refreshes the
    /// token and asks again at once, once per request.
    async fn attempt(
        &self,
        url: &str,
        scope: Scope<'_>,
        refreshed: &std::sync::atomic::AtomicBool,
        big: bool,
    ) -> Result<Action<Body, GraphError>, Cancelled> {
        loop {
            if self.shutdown.is_cancelled() {
                return Err(Cancelled);
            }
            // Held until the answer is read: `concurrency` bounds requests in flight. Taken
            // before the token: a token fetched first could expire while the request waits
            // for its slot.
            let _slot = self.shutdown.run(self.limiter.acquire(scope)).await?;
            let token = match self.tokens.access_token().await {
                Ok(t) => t,
                Err(f) if self.shutdown.is_cancelled() => {
                    drop(f);
                    return Err(Cancelled);
                }
                Err(f) => return Ok(Action::Fail(GraphError::Auth(f))),
            };
            Counters::add(&self.counters.requests, 1);
            let request = self
                .http
                .get(url)
                .bearer_auth(token.expose())
                .header("Prefer", "include-unknown-enum-members")
                .header(reqwest::header::ACCEPT, "application/json")
                .send();
            // A GET is safe to abandon: on a signal it does not hold up the exit.
            let sent = self.shutdown.run(request).await?;
            self.counters
                .answered(sent.as_ref().ok().map(|r| r.status().as_u16()));
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    let reason = Reason::Transport(TransportError::new(&e));
                    return Ok(Action::Retry(Retry::failure(reason, None)));
                }
            };
            if resp.status().as_u16() == 401
                && !refreshed.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                self.tokens.invalidate(&token).await;
                continue;
            }
            return self.judge(url, scope, resp, big).await;
        }
    }

    /// Classifies one answer: a body to decode, a retry, or a final error.
    async fn judge(
        &self,
        url: &str,
        scope: Scope<'_>,
        mut resp: reqwest::Response,
        big: bool,
    ) -> Result<Action<Body, GraphError>, Cancelled> {
        let status = resp.status();
        if let Some(mut retry) = status_retry(status, resp.headers()) {
            if status.as_u16() == 429 {
                Counters::add(&self.counters.throttled, 1);
                // The whole scope waits, not just this request; the limiter decides how
                // long when Graph did not say.
                retry.after = Some(self.limiter.throttled(scope, retry.after));
            }
            return Ok(Action::Retry(retry));
        }
        if status.is_redirection() {
            return Ok(Action::Fail(GraphError::Redirect {
                status: status.as_u16(),
                path: path_of(url),
                host: location_host(resp.headers(), url),
            }));
        }
        if !status.is_success() {
            let body = self.shutdown.run(read_error_body(&mut resp)).await?;
            return Ok(Action::Fail(error_of(status.as_u16(), &body)));
        }
        self.limiter.succeeded(scope);
        match self
            .shutdown
            .run(read_capped(
                &mut resp,
                self.max_response_size,
                big.then_some(&self.big_bodies),
            ))
            .await?
        {
            Ok(read) => Ok(Action::Done(Body {
                status: status.as_u16(),
                read,
            })),
            Err(BodyError::TooLarge) => Ok(Action::Fail(GraphError::TooLarge {
                path: path_of(url),
                cap: self.max_response_size,
            })),
            // A body cut short is worth another try: the GET is safe to repeat.
            Err(BodyError::Transport(e)) => {
                Ok(Action::Retry(Retry::failure(Reason::Transport(e), None)))
            }
        }
    }
}

/// A successful answer's body, not yet decoded.
struct Body {
    status: u16,
    read: Read,
}

/// A final error answer: Graph's code (the inner one when more specific), its message kept
/// for classification only.
fn error_of(status: u16, body: &[u8]) -> GraphError {
    let envelope: ErrorEnvelope = serde_json::from_slice(body).unwrap_or_default();
    let detail = envelope.error.unwrap_or_default();
    let code = detail
        .inner_error
        .and_then(|i| i.code)
        .filter(|c| !c.is_empty())
        .unwrap_or(detail.code);
    let code = crate::redact::printable(&code, 80);
    if status == 401 {
        return GraphError::Auth(Fatal::auth(format!(
            "Graph rejected a freshly issued access token (401 {code}); check that the technical user is enabled and the app has the scopes, then run `teams-connector login`"
        )));
    }
    GraphError::Status {
        status,
        code,
        message: detail.message.chars().take(500).collect(),
    }
}

/// serde's account of a body that does not decode, without the values it quotes: the
/// category, the position, and the message only where it names a field, not a value.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = e.to_string();
    let what = match e.classify() {
        Category::Io => "a read error".to_string(),
        Category::Syntax => "malformed JSON".to_string(),
        Category::Eof => "JSON cut off".to_string(),
        Category::Data
            if msg.starts_with("missing field") || msg.starts_with("duplicate field") =>
        {
            msg.split(" at line").next().unwrap_or("").to_string()
        }
        Category::Data => "a field of an unexpected type or value".to_string(),
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

fn host_of(link: &str) -> String {
    url::Url::parse(link)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "an unparsable URL".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_the_values_they_met() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct M {
            id: u64,
        }
        let e = serde_json::from_str::<M>(r#"{"id": "alex@contoso.com wrote this"}"#).unwrap_err();
        let d = describe_json_error(&e);
        assert!(!d.contains("alex") && !d.contains("wrote"), "{d}");
        assert!(d.contains("line 1"), "{d}");
        let e = serde_json::from_str::<M>("{}").unwrap_err();
        assert!(describe_json_error(&e).starts_with("missing field `id`"));
        let e = serde_json::from_str::<M>(r#"{"id": 1"#).unwrap_err();
        assert!(describe_json_error(&e).starts_with("JSON cut off"));
    }

    /// Decoded as text once the whole body is UTF-8; a body with a byte that is not is
    /// still refused where it is, as decoding from bytes refuses it.
    #[test]
    fn a_body_that_is_not_utf8_is_refused_where_it_is() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct M<'a> {
            #[serde(borrow)]
            id: std::borrow::Cow<'a, str>,
        }
        let page = |bytes: &[u8]| RawPage {
            status: 200,
            path: "/v1.0/teams".into(),
            bytes: bytes.to_vec(),
            big: None,
            hold: None,
        };
        let ok = page("{\"id\": \"Zoë\"}".as_bytes());
        let m: M = ok.decode().unwrap();
        assert!(matches!(m.id, std::borrow::Cow::Borrowed("Zoë")));
        let bad = page(b"{\"id\": \"Zo\xff\"}");
        let e = bad.decode::<M>().unwrap_err();
        let GraphError::Invalid { detail, path, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(path, "/v1.0/teams");
        assert_eq!(detail, "malformed JSON at line 1 column 11");
    }

    #[test]
    fn error_bodies_give_their_code_and_never_their_message_to_display() {
        let body = br#"{"error":{"code":"Forbidden","message":"secret text","innerError":{"code":"UnknownError"}}}"#;
        let e = error_of(403, body);
        assert_eq!(e.to_string(), "Graph answered 403 UnknownError");
        let GraphError::Status { message, .. } = e else {
            panic!()
        };
        assert_eq!(message, "secret text", "kept for classification");
    }
}
